"""`tpmon webhook …`, `tpmon notify …` and `tpmon subscribers …`: webhooks ops configure, the outbox's dead letters,
a sender process, and the data controller's requests (count, export, delete an address)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..config import Settings, load_config
from ..config.texts import TextError
from ..errors import MonitorError, NotFound
from ..i18n import N_, Text, format_short, literal, said
from ..logs import setup_logging
from ..notify.scopes import EVERYTHING, parse_scope
from ..notify.tokens import Signer, load_secret
from .inputs import MAX_LIMIT, record_id, seconds
from .inputs import count as whole_number
from .texts import _

if TYPE_CHECKING:
    from ..store import Store
    from ..store.outbox_store import DeadLetter
    from ..store.webhook_store import Webhook

# The store (SQLAlchemy, SQLModel and its tables: about 60 % of the command line's start) is imported by the
# commands that use it, not by `tpmon --help`, `tpmon check-config` or a refused argument.

__all__ = ["register"]

DEFAULT_CONFIG = "config/example.yaml"


def _settings(args: argparse.Namespace) -> Settings:
    return load_config(getattr(args, "config", None) or os.environ.get("TPMON_CONFIG") or DEFAULT_CONFIG)


@contextmanager
def _store() -> Iterator[Store]:
    from ..store import Store, default_url

    store = Store.open(default_url())
    try:
        yield store
    finally:
        store.close()


def _when(moment: datetime | None) -> str:
    return format_short(moment) if moment else "—"


# --- webhooks --------------------------------------------------------------------------------------------------
def _webhook_json(hook: Webhook) -> dict[str, Any]:
    return {
        "id": hook.id,
        "url": hook.url,
        "scopes": list(hook.scopes),
        "enabled": hook.enabled,
        "allow_private": hook.allow_private,
        "description": hook.description,
        "created_at": hook.created_at.isoformat(),
        "failing_since": hook.failing_since.isoformat() if hook.failing_since else None,
        "disabled_at": hook.disabled_at.isoformat() if hook.disabled_at else None,
    }


def _said(exc: ValueError) -> Text:
    """A refusal's reason in each language (a TextError's), or as it is."""
    return exc.text if isinstance(exc, TextError) else literal(str(exc))


def cmd_webhook_add(args: argparse.Namespace) -> int:
    from ..delivery.address_guard import check_url
    from ..store.webhook_store import Webhooks

    settings = _settings(args)
    try:
        check_url(args.url)
    except ValueError as exc:
        raise MonitorError(said("URL: {problem}", problem=_said(exc))) from None
    scopes = []
    for scope in args.scope or [EVERYTHING]:
        try:
            scopes.append(parse_scope(scope, settings))
        except ValueError as exc:
            raise MonitorError(said("--scope {scope}: {problem}", scope=scope, problem=_said(exc))) from None
    signer = Signer(load_secret(os.environ))  # before writing anything: the secret is needed to sign
    with _store() as store:
        hook = Webhooks(store).add(args.url, scopes, allow_private=args.allow_private, description=args.description)
    print(_("webhook {id} added: {url} ({scopes})").format(id=hook.id, url=hook.url, scopes=", ".join(hook.scopes)))
    secret = _("signing secret (shown once, give it to the receiver): {secret}")
    print(secret.format(secret=signer.webhook_secret(hook.salt)))
    return 0


def cmd_webhook_list(args: argparse.Namespace) -> int:
    from ..store.webhook_store import Webhooks

    with _store() as store:
        hooks = Webhooks(store).all()
    if args.json:
        print(json.dumps([_webhook_json(hook) for hook in hooks], indent=2))
        return 0
    for hook in hooks:
        state = _("enabled") if hook.enabled else _("DISABLED since {when}").format(when=_when(hook.disabled_at))
        failing = _(", failing since {when}").format(when=_when(hook.failing_since)) if hook.failing_since else ""
        private = _(", private destinations allowed") if hook.allow_private else ""
        print(f"{hook.id:>4}  {hook.url}  [{', '.join(hook.scopes)}]  {state}{failing}{private}")
    if not hooks:
        print(_("no webhook"))
    return 0


def cmd_webhook_remove(args: argparse.Namespace) -> int:
    from ..store.webhook_store import Webhooks

    with _store() as store:
        Webhooks(store).remove(args.id)
    print(_("webhook {id} removed, with its pending deliveries").format(id=args.id))
    return 0


def cmd_webhook_enable(args: argparse.Namespace) -> int:
    from ..store.webhook_store import Webhooks

    with _store() as store:
        Webhooks(store).enable(args.id)
    print(_("webhook {id} enabled").format(id=args.id))
    return 0


def cmd_webhook_test(args: argparse.Namespace) -> int:
    from ..delivery.smtp_sender import SendFailed
    from ..delivery.webhook_sender import WebhookSender
    from ..notify.payloads import test_payload
    from ..store.webhook_store import Webhooks

    signer = Signer(load_secret(os.environ))
    with _store() as store:
        hook = Webhooks(store).get(args.id)
    now = datetime.now(UTC)
    try:
        WebhookSender().send(
            hook.url,
            signer.webhook_secret(hook.salt),
            f"tpmon-test-{int(now.timestamp())}",
            test_payload(now.isoformat()),
            allow_private=hook.allow_private,
        )
    except SendFailed as exc:
        print(f"webhook {hook.id}: {exc}", file=sys.stderr)
        return 1
    print(_("webhook {id}: test delivered").format(id=hook.id))
    return 0


# --- the outbox ------------------------------------------------------------------------------------------------
def _letter_json(letter: DeadLetter) -> dict[str, Any]:
    return {
        "id": letter.id,
        "channel": letter.channel,
        "target": letter.target,
        "event_id": letter.event_id,
        "attempts": letter.attempts,
        "last_error": letter.last_error,
        "created_at": letter.created_at.isoformat(),
    }


def cmd_notify_list(args: argparse.Namespace) -> int:
    from ..store.outbox_store import Outbox

    with _store() as store:
        outbox = Outbox(store)
        letters = outbox.dead_letters(limit=args.limit) if args.failed else outbox.pending(limit=args.limit)
        figures = outbox.figures()
    if args.json:
        print(json.dumps([_letter_json(letter) for letter in letters], indent=2))
        return 0
    queues = ", ".join(f"{name} {count}" for name, count in figures.pending.items())
    dead = ", ".join(f"{name} {count}" for name, count in figures.failed.items())
    print(_("waiting: {queues}; dead letters: {dead}").format(queues=queues, dead=dead))
    for letter in letters:
        error = f"  {letter.last_error}" if letter.last_error else ""
        event = _("event {id}").format(id=letter.event_id) if letter.event_id else _("confirmation")
        print(f"{letter.id:>8}  {letter.channel:<7} {letter.target:<20} {event}  x{letter.attempts}{error}")
    return 0


def cmd_notify_retry(args: argparse.Namespace) -> int:
    from ..store.outbox_store import Outbox

    with _store() as store:
        count = Outbox(store).retry(args.ids or ())
    print(_("{count} dead letter(s) back in the queue").format(count=count))
    return 0


def cmd_notify_run(args: argparse.Namespace) -> int:
    """A sender alone (no probe, no page): another instance's outbox, or a second sender beside it."""
    from ..delivery.notifier import Notifier
    from ..delivery.smtp_sender import SmtpSender, smtp_settings

    settings = _settings(args)
    notifications = settings.notifications
    if notifications is None:
        raise MonitorError(_("the config has no notifications: section; nothing to send"))
    signer = Signer(load_secret(os.environ))
    smtp = SmtpSender(smtp_settings(os.environ)) if notifications.subscriptions else None
    setup_logging(args.log_level, "text")
    from ..store import Store, default_url

    store = Store.open(default_url())

    async def main() -> None:
        notifier = Notifier(store, lambda: settings, signer, smtp=smtp, environ=os.environ, batch=args.batch)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await notifier.start(args.interval)
        await stop.wait()
        await notifier.stop()

    try:
        asyncio.run(main())
    finally:
        store.close()
    return 0


# --- the data controller -----------------------------------------------------------------------------------------
def cmd_subscribers_count(args: argparse.Namespace) -> int:
    from ..store.subscriber_store import Subscribers

    with _store() as store:
        counts = Subscribers(store).counts()
    if args.json:
        print(json.dumps(counts, indent=2))
        return 0
    summary = _("{confirmed} confirmed address(es), {unconfirmed} awaiting confirmation")
    print(summary.format(confirmed=counts["confirmed"], unconfirmed=counts["unconfirmed"]))
    for scope, count in counts["by_scope"].items():
        print(f"  {scope:<30} {count}")
    return 0


def cmd_subscribers_export(args: argparse.Namespace) -> int:
    from ..store.subscriber_store import Subscribers

    with _store() as store:
        records = Subscribers(store).records(args.address)
    if args.address and not records:
        raise NotFound(_("no subscriber {address}").format(address=args.address))
    for record in records:
        print(json.dumps(record.as_json(), ensure_ascii=False))
    return 0


def cmd_subscribers_delete(args: argparse.Namespace) -> int:
    from ..store.subscriber_store import Subscribers

    with _store() as store:
        if not Subscribers(store).delete_address(args.address):
            raise NotFound(_("no subscriber {address}").format(address=args.address))
    print(_("{address}: erased, with its scopes and pending messages").format(address=args.address))
    return 0


def register(sub: Any, leaf: Callable[[Any, str, str, Callable[[argparse.Namespace], int]], Any]) -> None:
    """`webhook add|list|remove|enable|test`, `notify list|retry|run`, `subscribers count|export|delete`."""
    webhook = sub.add_parser("webhook", help=_("webhooks ops configure (signed, Standard Webhooks)"))
    verbs = webhook.add_subparsers(dest="webhook_command", metavar="ACTION", required=True)
    add = leaf(verbs, "add", _("add a webhook; prints its signing secret once"), cmd_webhook_add)
    add.add_argument("url", metavar="URL", help=_("http(s) address that receives the JSON payloads"))
    add.add_argument("--scope", action="append", metavar="SCOPE", help=_("* (default), a network, or network/domain"))
    add.add_argument("--allow-private", action="store_true", help=_("allow a private or loopback destination"))
    add.add_argument("--description", default="", help=_("a note for ops"))
    shown = leaf(verbs, "list", _("list webhooks (never their secrets)"), cmd_webhook_list)
    shown.add_argument("--json", action="store_true", help=_("print JSON"))
    for name, text, func in (
        ("remove", N_("remove a webhook and its pending deliveries"), cmd_webhook_remove),
        ("enable", N_("enable again a webhook disabled after failing"), cmd_webhook_enable),
        ("test", N_("send a signed test payload now"), cmd_webhook_test),
    ):
        leaf(verbs, name, _(text), func).add_argument("id", type=record_id, metavar="ID")

    notify = sub.add_parser("notify", help=_("the notifications' outbox: waiting, dead letters, a sender"))
    verbs = notify.add_subparsers(dest="notify_command", metavar="ACTION", required=True)
    listed = leaf(verbs, "list", _("deliveries waiting (or, with --failed, given up)"), cmd_notify_list)
    listed.add_argument("--failed", action="store_true", help=_("dead letters: deliveries given up"))
    listed.add_argument("--limit", type=whole_number(1, MAX_LIMIT), default=100, help=_("at most 10,000"))
    listed.add_argument("--json", action="store_true", help=_("print JSON"))
    retry = leaf(verbs, "retry", _("put dead letters (all, or those named) back in the queue"), cmd_notify_retry)
    retry.add_argument("ids", nargs="*", type=record_id, metavar="ID")
    run = leaf(verbs, "run", _("send notifications only (no probe, no page) until stopped"), cmd_notify_run)
    run.add_argument(
        "--interval",
        type=seconds(0, 3600),
        default=1.0,
        help=_("seconds between rounds when idle (default 1, at most 3600)"),
    )
    run.add_argument(
        "--batch", type=whole_number(1, MAX_LIMIT), default=200, help=_("targets claimed at once (default 200)")
    )
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    subscribers = sub.add_parser("subscribers", help=_("e-mail subscribers, for the data controller (GDPR)"))
    verbs = subscribers.add_subparsers(dest="subscribers_command", metavar="ACTION", required=True)
    count = leaf(verbs, "count", _("how many addresses, by scope"), cmd_subscribers_count)
    count.add_argument("--json", action="store_true", help=_("print JSON"))
    export = leaf(
        verbs, "export", _("all that is kept about an address (or everyone), as JSON lines"), cmd_subscribers_export
    )
    export.add_argument("address", nargs="?", metavar="ADDRESS")
    delete = leaf(verbs, "delete", _("erase an address, its scopes and its pending messages"), cmd_subscribers_delete)
    delete.add_argument("address", metavar="ADDRESS")
