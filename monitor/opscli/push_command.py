"""`tpmon push NETWORK/FLOW/CHECK`: record a partner's heartbeat or reported state for a push check."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

from ..config import load_config
from .texts import _

__all__ = ["cmd_push", "register"]

_DEFAULT_CONFIG = "config/example.yaml"  # as `tpmon`'s other commands


def register(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """Add `push` with `command(name, help)`, the helper of `cli.build_parser` that adds `--config`."""
    push = command("push", _("record a signal of a push check: a heartbeat, or a reported degraded/down state"))
    push.add_argument(
        "target", metavar="NETWORK/FLOW/CHECK", help=_("a check of kind push, e.g. viamedis/pec/operateur")
    )
    push.add_argument(
        "--state",
        default="operational",
        metavar="{operational,degraded,down}",
        help=_("what the partner reports (default: operational, i.e. a heartbeat)"),
    )
    push.add_argument("--detail", default="", metavar="CODE", help=_("a short code: at most 40 of a-z 0-9 _ . -"))
    push.set_defaults(func=cmd_push)


def cmd_push(args: argparse.Namespace) -> int:
    """Validate against the config, then append the signal to the store's inbox; nothing is written on refusal."""
    from ..push_signals import validate_signal
    from ..staff.audit import cli_actor
    from ..store import Store, default_url
    from ..store.signal_store import add_signal

    settings = load_config(args.config or os.environ.get("TPMON_CONFIG") or _DEFAULT_CONFIG)
    signal = validate_signal(settings, args.target, args.state, args.detail)
    with Store.open(default_url()) as store:
        stored = add_signal(store, signal.check, signal.state, signal.detail, author=cli_actor())
    when = stored.received_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    recorded = _("{target}: {state} recorded at {when} (signal #{id})")
    print(recorded.format(target=args.target, state=stored.state, when=when, id=stored.id))
    return 0
