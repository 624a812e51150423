"""`tpmon user add|list|disable|enable|reset-mfa|password`: staff accounts, each change audited as the OS user.

A password is typed at a prompt, or read from stdin or a file — never given as an argument (it would stay in the
shell's history and in the process list). Only the account name is kept about the person.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import MonitorError, StaffError
from .inputs import config_path

__all__ = ["register_user_commands"]


def _now() -> datetime:
    return datetime.now(UTC)


@contextmanager
def _staff() -> Iterator[Any]:
    from ..store import Store, default_url
    from ..store.staff_store import StaffStore

    store = Store.open(default_url())
    try:
        yield StaffStore(store)
    finally:
        store.close()


@contextmanager
def _writes() -> Iterator[Any]:
    """Account changes through `operators.audited`, as the OS user (an admin: whoever holds the database URL)."""
    from ..operators.audited import AuditedStaff
    from ..staff.audit import cli_actor
    from ..staff.roles import Principal, Scope
    from ..store import Store, default_url

    store = Store.open(default_url())
    try:
        yield AuditedStaff(store, Principal(cli_actor(), (Scope("admin"),)), "cli", clock=_now)
    finally:
        store.close()


def read_password(args: argparse.Namespace, account: str) -> str:
    """From --password-file, --password-stdin, or a prompt typed twice; checked against the password rules."""
    from ..staff.passwords import check_new_password

    if args.password_file:
        try:
            lines = Path(args.password_file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a UTF-8 text file"
            raise MonitorError(f"--password-file: cannot read {args.password_file}: {reason}") from None
        password = lines[0] if lines else ""
    elif args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        if not sys.stdin.isatty():
            raise StaffError("password", "no terminal to type it in: use --password-stdin or --password-file")
        password = getpass.getpass(f"password for {account}: ")
        if getpass.getpass("again: ") != password:
            raise StaffError("password", "the two passwords differ")
    check_new_password(password, account)
    return password


class _NoPasswordArgument(argparse.Action):
    """`--password SECRET` refused in one line that does not repeat it."""

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        parser.error(
            "--password: never give a password as an argument (shell history, process list); "
            "type it at the prompt, or use --password-stdin or --password-file"
        )


def _password_options(parser: argparse.ArgumentParser) -> None:
    parser.allow_abbrev = False  # no abbreviation: `--password-f` is not --password-file
    parser.add_argument("--password", nargs="?", action=_NoPasswordArgument, help=argparse.SUPPRESS)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--password-stdin", action="store_true", help="read the password from stdin's first line")
    source.add_argument("--password-file", metavar="FILE", help="read the password from FILE's first line")


def cmd_user_add(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..staff.passwords import Passwords
    from ..staff.second_factor import new_secret
    from ..store.staff_store import check_account_name

    check_account_name(args.name)
    settings = load_config(config_path(args))
    unknown = [n for n in args.network or () if n not in settings.networks]
    if unknown:
        raise StaffError("--network", f"no network {unknown[0]!r} (known: {', '.join(settings.networks)})")
    password = read_password(args, args.name)
    with _writes() as staff:
        user = staff.add_user(args.name, args.role, args.network or (), Passwords().hash(password), new_secret())
    scope = f" on {', '.join(user.networks)}" if user.networks else ""
    print(f"account {user.name} added ({user.role}{scope}).")
    print("The second factor (TOTP) is set up at the first sign-in on the operators' listener; it is then mandatory.")
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    with _staff() as staff:
        users = staff.users()
    if args.json:
        print(json.dumps([u.shown() for u in users], indent=2, ensure_ascii=False))
        return 0
    print(f"{'NAME':<20} {'ROLE':<7} {'STATE':<9} {'2FA':<8} NETWORKS")
    now = _now()
    for user in users:
        state = "disabled" if user.disabled else "locked" if user.locked(now) else "active"
        factor = "enrolled" if user.enrolled else "pending"
        print(f"{user.name:<20} {user.role:<7} {state:<9} {factor:<8} {', '.join(user.networks) or '-'}")
    return 0


def cmd_user_disable(args: argparse.Namespace) -> int:
    with _writes() as staff:
        user = staff.set_disabled(args.name, True)
    print(f"account {user.name} disabled: its sessions have ended.")
    return 0


def cmd_user_enable(args: argparse.Namespace) -> int:
    with _writes() as staff:
        user = staff.set_disabled(args.name, False)
    print(f"account {user.name} enabled.")
    return 0


def cmd_user_reset_mfa(args: argparse.Namespace) -> int:
    from ..staff.second_factor import new_secret

    with _writes() as staff:
        user = staff.reset_second_factor(args.name, new_secret())
    print(f"account {user.name}: second factor reset, sessions ended; a new one is set up at the next sign-in.")
    return 0


def cmd_user_password(args: argparse.Namespace) -> int:
    from ..staff.passwords import Passwords

    password = read_password(args, args.name)
    with _writes() as staff:
        user = staff.set_password(args.name, Passwords().hash(password))
    print(f"account {user.name}: password changed, sessions ended, lockout lifted.")
    return 0


def register_user_commands(sub: Any, leaf: Callable[..., argparse.ArgumentParser], parser_class: Any) -> None:
    from ..staff.roles import ROLES

    user = sub.add_parser(
        "user", help="staff accounts (admin, editor, viewer)", description="Staff accounts of the operators' side."
    )
    verbs = user.add_subparsers(dest="user_command", metavar="ACTION", required=True, parser_class=parser_class)
    add = leaf(verbs, "add", "add an account; its second factor is set up at its first sign-in", cmd_user_add)
    add.add_argument("name", metavar="NAME", help="the account name (a staff handle, not an e-mail address)")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--network", action="append", metavar="NETWORK", help="an editor's network (repeat for more)")
    _password_options(add)
    listed = leaf(verbs, "list", "list accounts (never a password or a secret)", cmd_user_list)
    listed.add_argument("--json", action="store_true", help="print JSON")
    for name, help_text, func in (
        ("disable", "disable an account; its sessions end at once", cmd_user_disable),
        ("enable", "enable a disabled account", cmd_user_enable),
        ("reset-mfa", "reset an account's second factor (lost phone); its sessions end", cmd_user_reset_mfa),
        ("password", "set a new password (typed, or from stdin or a file); sessions end", cmd_user_password),
    ):
        verb = leaf(verbs, name, help_text, func)
        verb.add_argument("name", metavar="NAME")
        if name == "password":
            _password_options(verb)
