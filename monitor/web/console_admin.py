"""The console's pages for maintenance windows, push checks and their last signal, machine tokens, staff accounts
and the audit log (shown, and exported as JSON lines). Writes go through `operators.audited` (listener
`console`); tokens and accounts are an admin's; the audit log is never editable from here."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from starlette.responses import Response, StreamingResponse

from ..config import PushCheck, parse_duration
from ..config.texts import reason_of
from ..declared.maintenance import WEEKDAYS, MaintenanceWindow, check_not_over, occurrences
from ..errors import FieldError, IncidentError, MonitorError, NotFound
from ..i18n import PARIS, said
from ..models import ComponentRef
from ..operators.audited import AuditedDeclarations, AuditedStaff
from ..staff.passwords import check_new_password
from ..staff.roles import ROLES, Role, check_scope, parse_scope
from ..staff.second_factor import new_secret
from ..staff.tokens import digest, new_token, public_prefix
from ..store.audit_store import audit_events, export_events
from ..store.signal_store import last_signals
from ..store.staff_store import StaffStore
from ..store.token_store import tokens
from . import admin_models as am
from .admin_api import validation_refusal, window_of
from .console_base import Handler, Visit, form_of, guard_page, redirect, signed_in
from .console_forms import component_choices, form_text

__all__ = ["console_admin_routes"]

WEEKDAY_NAMES = {
    "fr": ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"],
    "en": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
}
AUDIT_PAGE = 100
LABEL = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")  # as `tpmon token create --label`


class FormProblem(FieldError):
    """A console form refused: the field and its problem, shown in the visit's language (`problem_in(lang)`)."""


def _problem(exc: Exception) -> FieldError:
    if isinstance(exc, FieldError):
        return exc
    if isinstance(exc, MonitorError) and exc.said is not None:
        return FormProblem("", exc.said)
    field, _, problem = str(exc).partition(": ")
    return FormProblem(field if problem else "", problem or str(exc))


async def _write(v: Visit, act: Any) -> Any:
    return await asyncio.to_thread(act)


# Maintenance


def _window_rows(v: Visit, windows: Iterable[MaintenanceWindow]) -> list[tuple[MaintenanceWindow, list[Any], bool]]:
    now = v.services.clock()
    principal = signed_in(v).principal
    rows = []
    for window in windows:
        following = [
            (o, o.start.astimezone(PARIS).date().isoformat())
            for o in occurrences(window, now, now + timedelta(days=400))
            if o.end > now
        ][:3]
        may = principal.writes_anywhere and all(
            principal.may_write(ComponentRef.parse(k).network) for k in window.components
        )
        rows.append((window, following, may))
    return rows


def _maintenance_body(form: dict[str, str], principal_choices: list[str]) -> am.MaintenanceIn:
    chosen = [key for key in principal_choices if form.get(f"component:{key}") == "on"]
    frequency = form.get("frequency", "none")
    weekdays = [d for d in WEEKDAYS if form.get(f"weekday-{d}") == "on"]
    title = form_text(form, "title")
    raw: dict[str, Any] = {
        "title": {"fr": title.fr, "en": title.en},
        "components": chosen,
        "start": form.get("start", "").strip(),
        "duration": form.get("duration", "").strip(),
        "recurrence": {"frequency": frequency, "weekdays": weekdays if frequency == "weekly" else []},
    }
    if not chosen:
        raise FormProblem("components", said("choose at least one component"))
    try:
        return am.MaintenanceIn.model_validate(raw)
    except ValidationError as exc:
        refusal = validation_refusal(exc)
        raise FormProblem(refusal.field or "", refusal.problem) from None


async def maintenance(v: Visit) -> Response:
    services = v.services
    principal = signed_in(v).principal
    choices = component_choices(services.settings, principal, v.lang)
    keys = [c.value for _, group in choices for c in group]
    form = form_of(v)
    error: FieldError | None = None
    if v.request.method == "POST":
        try:
            body = _maintenance_body(form, keys)
            now = services.clock()

            def act() -> MaintenanceWindow:
                window = window_of(body)
                check_not_over(window, now)
                writes = AuditedDeclarations(
                    services.store, services.settings, principal, "console", clock=services.clock
                )
                return writes.add_window(window)

            await _write(v, act)
            await services.refresh_overrides()
            return redirect("/maintenance?ajoute=1")
        except FieldError as exc:
            error = _problem(exc)
    windows = services.snapshot().windows
    return v.page(
        "maintenance.html",
        status=422 if error else 200,
        windows=_window_rows(v, windows),
        components=choices,
        weekdays=list(zip(WEEKDAYS, WEEKDAY_NAMES[v.lang], strict=True)),
        form=form,
        error=error,
        added=v.request.query_params.get("ajoute") == "1",
        may_write=principal.writes_anywhere,
    )


def _number(v: Visit) -> int:
    raw = str(v.request.path_params["id"])
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 10**12):
        raise NotFound(said("no window {number!r}", number=raw[:20]))
    return int(raw)


async def cancel_window(v: Visit) -> Response:
    services = v.services
    principal = signed_in(v).principal
    number = _number(v)

    def act() -> MaintenanceWindow:
        writes = AuditedDeclarations(services.store, services.settings, principal, "console", clock=services.clock)
        return writes.cancel_window(number)

    try:
        await _write(v, act)
    except IncidentError as exc:
        return v.page("refused.html", status=409, title=v.say("Refusé", "Refused"), detail=exc.text(v.lang))
    await services.refresh_overrides()
    return redirect("/maintenance")


# Push checks


async def push_checks(v: Visit) -> Response:
    services = v.services
    settings, snapshot = services.settings, services.snapshot()
    found = [(network, check) for network, check in settings.checks() if isinstance(check, PushCheck)]
    keys = [ComponentRef("check", network, check.flow, check.name).key for network, check in found]
    signals = await asyncio.to_thread(last_signals, services.store, keys)
    rows = []
    for (network, check), key in zip(found, keys, strict=True):
        status = snapshot.get(key)
        rows.append((settings.networks[network].name, network, check, key, status, signals.get(key)))
    return v.page("push_checks.html", rows=rows, now=services.clock())


# Tokens (admins)


def _scopes(raw: str, v: Visit) -> list[str]:
    found = []
    for text in dict.fromkeys(raw.replace(",", " ").split()):
        try:
            scope = parse_scope(text)
            check_scope(scope, v.services.settings)
        except ValueError as exc:
            raise FormProblem("scopes", reason_of(exc)) from None
        found.append(str(scope))
    if not found:
        raise FormProblem("scopes", said("give at least one scope, e.g. push:viamedis/pec/operateur"))
    return found


async def token_page(v: Visit) -> Response:
    services = v.services
    principal = signed_in(v).principal
    form = form_of(v)
    error: FieldError | None = None
    created: tuple[str, Any] | None = None
    if v.request.method == "POST":
        try:
            label = form.get("label", "").strip()
            if not LABEL.fullmatch(label):
                raise FormProblem("label", said("1–64 of a-z, 0-9, '.', '_', '-' saying what the token is for"))
            scopes = _scopes(form.get("scopes", ""), v)
            expires_at = None
            if form.get("expires", "").strip():
                try:
                    expires_at = services.clock() + timedelta(seconds=parse_duration(form["expires"].strip()))
                except ValueError as exc:
                    raise FormProblem("expires", reason_of(exc)) from None
            secret = new_token()

            def act() -> Any:
                staff = AuditedStaff(services.store, principal, "console", clock=services.clock)
                return staff.create_token(
                    digest=digest(secret), prefix=public_prefix(secret), label=label, scopes=scopes,
                    expires_at=expires_at,
                )  # fmt: skip

            created = (secret, await _write(v, act))
            await services.desk.tokens.reload(services.clock())
            form = {}
        except FieldError as exc:
            error = exc
    listed = await asyncio.to_thread(tokens, services.store, include_revoked=True)
    return v.page(
        "tokens.html", status=422 if error else 200, tokens=listed, form=form, error=error, created=created,
        now=services.clock(),
    )  # fmt: skip


async def revoke(v: Visit) -> Response:
    services = v.services
    principal = signed_in(v).principal
    number = _number(v)

    def act() -> Any:
        return AuditedStaff(services.store, principal, "console", clock=services.clock).revoke_token(str(number))

    try:
        await _write(v, act)
    except MonitorError as exc:
        return v.page("refused.html", status=409, title=v.say("Refusé", "Refused"), detail=exc.text(v.lang))
    await services.desk.tokens.reload(services.clock())
    return redirect("/jetons")


# Accounts (admins)


def _role(raw: str) -> Role:
    for role in ROLES:
        if role == raw:
            return role
    raise FormProblem("role", said("one of {roles}", roles=", ".join(ROLES)))


async def accounts(v: Visit) -> Response:
    services = v.services
    principal = signed_in(v).principal
    form = form_of(v)
    error: FieldError | None = None
    if v.request.method == "POST":
        try:
            name = form.get("name", "").strip()
            role = _role(form.get("role", ""))
            networks = [n for n in services.settings.networks if form.get(f"network-{n}") == "on"]
            password = form.get("password", "")
            try:
                check_new_password(password, name)
            except MonitorError as exc:
                raise _problem(exc) from None
            hashed = await asyncio.to_thread(services.desk.passwords.hash, password)

            def act() -> Any:
                staff = AuditedStaff(services.store, principal, "console", clock=services.clock)
                return staff.add_user(name, role, networks, hashed, new_secret())

            try:
                await _write(v, act)
            except MonitorError as exc:
                raise _problem(exc) from None
            return redirect("/comptes")
        except FieldError as exc:
            error = exc
    users = await asyncio.to_thread(StaffStore(services.store).users)
    return v.page(
        "accounts.html", status=422 if error else 200, users=users, form={k: v2 for k, v2 in form.items()
                                                                        if k != "password"},
        error=error, networks=list(services.settings.networks.items()), roles=ROLES, now=services.clock(),
    )  # fmt: skip


async def account_action(v: Visit) -> Response:
    services = v.services
    principal = signed_in(v).principal
    name = str(v.request.path_params["name"])[:64]
    action = str(v.request.path_params["action"])
    staff = AuditedStaff(services.store, principal, "console", clock=services.clock)

    def act() -> Any:
        if action == "desactiver":
            return staff.set_disabled(name, True)
        if action == "activer":
            return staff.set_disabled(name, False)
        if action == "second-facteur":
            return staff.reset_second_factor(name, new_secret())
        raise NotFound(said("no action {action!r}", action=action[:30]))

    try:
        await _write(v, act)
    except MonitorError as exc:
        if isinstance(exc, NotFound):
            raise
        return v.page("refused.html", status=409, title=v.say("Refusé", "Refused"), detail=exc.text(v.lang))
    return redirect("/comptes")


# The audit log


def _audit_filters(v: Visit) -> dict[str, Any]:
    query = v.request.query_params
    action = query.get("action", "").strip()[:60] or None
    actor = query.get("acteur", "").strip()[:80] or None
    before = query.get("avant", "")
    return {
        "action": action,
        "actor": actor,
        "before_id": int(before) if before.isascii() and before.isdigit() and len(before) < 13 else None,
    }


async def journal(v: Visit) -> Response:
    services = v.services
    filters = _audit_filters(v)
    found = await asyncio.to_thread(lambda: audit_events(services.store, limit=AUDIT_PAGE + 1, **filters))
    more = found[AUDIT_PAGE].id if len(found) > AUDIT_PAGE and found[AUDIT_PAGE - 1].id else None
    shown = [(e, json.dumps(e.before, ensure_ascii=False, indent=1) if e.before is not None else "",
              json.dumps(e.after, ensure_ascii=False, indent=1) if e.after is not None else "")
             for e in found[:AUDIT_PAGE]]  # fmt: skip
    older = found[AUDIT_PAGE - 1].id if more else None
    return v.page("journal.html", events=shown, filters=filters, older=older)


async def journal_export(v: Visit) -> Response:
    """Every event, oldest first, one JSON object a line, read from the store a batch at a time."""
    services = v.services
    days = v.request.query_params.get("jours", "")
    since = services.clock() - timedelta(days=int(days)) if days.isdigit() and 0 < int(days) < 100_000 else None

    async def lines() -> AsyncIterator[bytes]:
        events = export_events(services.store, since=since)
        while True:
            batch = await asyncio.to_thread(lambda: [e for _, e in zip(range(500), events, strict=False)])
            for event in batch:
                yield (json.dumps(event.as_json(), ensure_ascii=False) + "\n").encode()
            if len(batch) < 500:
                return

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    headers = {
        "Cache-Control": "no-store",
        "Content-Disposition": f'attachment; filename="tpmon-audit-{stamp}.jsonl"',
    }
    return StreamingResponse(lines(), media_type="application/jsonl; charset=utf-8", headers=headers)


async def cancel_occurrence(v: Visit) -> Response:
    services = v.services
    principal = signed_in(v).principal
    number = _number(v)
    raw = str(v.request.path_params["day"])
    try:
        day = date.fromisoformat(raw) if len(raw) == 10 else None
    except ValueError:
        day = None
    if day is None:
        raise NotFound(said("no date {day!r}", day=raw[:20]))

    def act() -> MaintenanceWindow:
        writes = AuditedDeclarations(services.store, services.settings, principal, "console", clock=services.clock)
        return writes.cancel_occurrence(number, day)

    try:
        await _write(v, act)
    except IncidentError as exc:
        return v.page("refused.html", status=409, title=v.say("Refusé", "Refused"), detail=exc.text(v.lang))
    await services.refresh_overrides()
    return redirect("/maintenance")


def console_admin_routes() -> list[tuple[str, Handler, list[str]]]:
    return [
        ("/maintenance", guard_page(maintenance), ["GET", "POST"]),
        ("/maintenance/{id}/annulation", guard_page(cancel_window), ["POST"]),
        ("/maintenance/{id}/occurrences/{day}/annulation", guard_page(cancel_occurrence), ["POST"]),
        ("/signaux", guard_page(push_checks), ["GET"]),
        ("/jetons", guard_page(token_page, admin=True), ["GET", "POST"]),
        ("/jetons/{id}/revocation", guard_page(revoke, admin=True), ["POST"]),
        ("/comptes", guard_page(accounts, admin=True), ["GET", "POST"]),
        ("/comptes/{name}/{action}", guard_page(account_action, admin=True), ["POST"]),
        ("/journal", guard_page(journal), ["GET"]),
        ("/journal.jsonl", guard_page(journal_export), ["GET"]),
    ]
