"""`tpmon token create|list|revoke`: machine tokens, shown once, stored as a digest, each change audited."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import StaffError
from .inputs import config_path
from .texts import _

__all__ = ["register_token_commands"]

LABEL = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
DEFAULT_EXPIRY = "365d"


def _writes(store: Any) -> Any:
    """Token changes through `operators.audited`, as the OS user (an admin: whoever holds the database URL)."""
    from ..operators.audited import AuditedStaff
    from ..staff.audit import cli_actor
    from ..staff.roles import Principal, Scope

    return AuditedStaff(store, Principal(cli_actor(), (Scope("admin"),)), "cli", clock=lambda: datetime.now(UTC))


def cmd_token_create(args: argparse.Namespace) -> int:
    from ..config import load_config, parse_duration
    from ..config.texts import reason_of
    from ..staff.roles import check_scope, parse_scope
    from ..staff.tokens import digest, new_token, public_prefix
    from ..store import Store, default_url

    if not LABEL.fullmatch(args.label):
        raise StaffError(
            "--label", _("1–64 of a-z, 0-9, '.', '_', '-' saying what the token is for (no personal data)")
        )
    settings = load_config(config_path(args))
    scopes = []
    for text in dict.fromkeys(args.scope):
        try:
            scope = parse_scope(text)
            check_scope(scope, settings)
        except ValueError as exc:
            raise StaffError("--scope", reason_of(exc)) from None
        scopes.append(scope)
    expires_at = None
    if not args.no_expiry:
        try:
            expires_at = datetime.now(UTC) + timedelta(seconds=parse_duration(args.expires))
        except ValueError as exc:
            raise StaffError("--expires", reason_of(exc)) from None
    secret = new_token()
    with Store.open(default_url()) as store:
        created = _writes(store).create_token(
            digest=digest(secret),
            prefix=public_prefix(secret),
            label=args.label,
            scopes=[str(s) for s in scopes],
            expires_at=expires_at,
        )
    expiry = _("until {when} UTC").format(when=f"{created.expires_at:%Y-%m-%d %H:%M}") if created.expires_at else ""
    until = expiry or _("with no expiry")
    done = _("token {id} ({prefix}…) created for {scopes}, {until}.")
    print(done.format(id=created.id, prefix=created.prefix, scopes=", ".join(created.scopes), until=until))
    print(_("Shown once — store it now; tpmon keeps only its digest:"))
    print(secret)
    if len(scopes) == 1 and scopes[0].check:
        s = scopes[0]
        print(f"tpmon:        POST /api/v1/push/{s.network}/{s.flow}/{s.check}  (Authorization: Bearer <token>)")
        print("Uptime Kuma:  GET  /api/push/<token>?status=up&msg=OK&ping=")
        print(f"Gatus:        POST /api/v1/endpoints/{s.network}_{s.check}/external?success=true (Bearer <token>)")
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    from ..store import Store, default_url
    from ..store.token_store import tokens

    with Store.open(default_url()) as store:
        found = tokens(store, include_revoked=args.all)
    if args.json:
        print(json.dumps([t.shown() for t in found], indent=2, ensure_ascii=False))
        return 0

    def stamp(moment: datetime | None) -> str:
        return f"{moment:%Y-%m-%d %H:%M}" if moment else "-"

    heads = _("PREFIX"), _("LABEL"), _("EXPIRES (UTC)"), _("LAST USE (UTC)"), _("SCOPES")
    print(f"{'ID':>4}  {heads[0]:<13} {heads[1]:<24} {heads[2]:<16} {heads[3]:<16} {heads[4]}")
    for t in found:
        revoked = _(" (revoked)") if t.revoked_at else ""
        print(
            f"{t.id:>4}  {t.prefix:<13} {t.label:<24} {stamp(t.expires_at):<16} {stamp(t.last_used_at):<16} "
            f"{', '.join(t.scopes)}{revoked}"
        )
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from ..store import Store, default_url

    with Store.open(default_url()) as store:
        revoked = _writes(store).revoke_token(args.token)
    done = _("token {id} ({prefix}…) revoked; running servers refuse it within seconds.")
    print(done.format(id=revoked.id, prefix=revoked.prefix))
    return 0


def register_token_commands(sub: Any, leaf: Callable[..., argparse.ArgumentParser], parser_class: Any) -> None:
    token = sub.add_parser(
        "token", help=_("machine tokens for the write API and partners' pushes"), description=_("Machine tokens.")
    )
    verbs = token.add_subparsers(dest="token_command", metavar="ACTION", required=True, parser_class=parser_class)
    create = leaf(verbs, "create", _("create a token; it is shown once"), cmd_token_create)
    create.add_argument(
        "--scope",
        action="append",
        required=True,
        metavar="SCOPE",
        help=_("admin, write:NETWORK, push:NETWORK or push:NETWORK/FLOW/CHECK (repeat for more)"),
    )
    create.add_argument("--label", required=True, help=_("what it is for, e.g. viamedis-pec-heartbeat"))
    expiry = create.add_mutually_exclusive_group()
    expiry.add_argument(
        "--expires",
        default=DEFAULT_EXPIRY,
        help=_("valid for this long (default {expiry})").format(expiry=DEFAULT_EXPIRY),
    )
    expiry.add_argument("--no-expiry", action="store_true", help=_("valid until revoked"))
    listed = leaf(verbs, "list", _("list tokens (never a secret)"), cmd_token_list)
    listed.add_argument("--all", action="store_true", help=_("include revoked tokens"))
    listed.add_argument("--json", action="store_true", help=_("print JSON"))
    revoke = leaf(verbs, "revoke", _("revoke a token (by id or prefix)"), cmd_token_revoke)
    revoke.add_argument("token", metavar="ID|PREFIX")
