"""The console's sign-in and incident pages on the operators' listener: sign-in with password and TOTP code, the
second factor's enrolment (its QR code drawn here, as SVG), sign-out, the current states, and incidents opened,
updated and resolved — each change previewed as the public page will show it before it is published.

Every write goes through `operators.audited` (listener `console`), like the API's and the CLI's; an editor is
offered only its networks, and the write refuses the others anyway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import segno
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response

from ..declared.incidents import IMPACTS, LIFECYCLE, Incident, add_update, open_incident
from ..errors import IncidentError, NotAllowed, NotFound, StoreError
from ..i18n import said, translate
from ..operators.audited import AuditedDeclarations
from ..operators.staff_access import REFUSED, Current, Refused
from ..store.declaration_store import Declarations
from .board_view import board_view
from .console_base import (
    FormTooLarge,
    Handler,
    Visit,
    csrf_page,
    csrf_refused,
    form_of,
    guard_page,
    read_form,
    redirect,
    refusal_page,
    signed_in,
    visit,
    write_error,
)
from .console_forms import (
    ROWS,
    component_choices,
    fingerprint,
    form_text,
    form_update,
    impact_of,
    state_choices,
)
from .incident_pages import IMPACT_LABELS, component_name, preview_incident
from .incident_view import PHASES, phase_label
from .render import Links
from .staff_auth import clear_session_cookie, client_address, set_session_cookie

__all__ = ["console_routes", "qr_svg"]


def qr_svg(uri: str) -> Markup:
    """The otpauth:// URI as an inline SVG QR code (segno), drawn dark on light for any authenticator's camera."""
    code = segno.make(uri, error="m")
    svg = code.svg_inline(scale=5, border=4, dark="#1b1b1b", light="#ffffff", omitsize=True)
    return Markup(svg)  # noqa: S704 — segno's own SVG of a URI we made; no user text in it


# Sign-in, enrolment, sign-out


def _next_page(raw: str | None) -> str:
    """Where to go after sign-in: a console path only (never another site)."""
    if raw and raw.startswith("/") and not raw.startswith("//") and "\\" not in raw and len(raw) < 200:
        return raw
    return "/"


async def sign_in_page(request: Request) -> Response:
    v = await visit(request, stage="none")
    if request.method == "GET":
        if (await visit(request)).current is not None:
            return redirect("/")
        return v.page("sign_in.html", name="", suite=_next_page(request.query_params.get("suite")))
    try:
        form = await read_form(request)
    except FormTooLarge:
        return refusal_page(v, 413, v.say("Formulaire trop long", "Form too long"), "64 KiB max.")
    if csrf_refused(request, None, form):
        return csrf_page(v)
    name, password, code = form.get("name", "")[:64], form.get("password", ""), form.get("code", "")[:16]
    access = v.services.desk.access
    try:
        outcome = await asyncio.to_thread(access.sign_in, name, password, code, client_address(request), "console")
    except StoreError as exc:
        return write_error(v, exc)
    suite = _next_page(form.get("suite"))
    if isinstance(outcome, Refused):
        status = 429 if outcome.retry_after else 401
        message = REFUSED[v.lang]
        if outcome.retry_after:
            minutes = max(1, round(outcome.retry_after / 60))
            message = v.say(
                f"Trop d'essais refusés depuis votre connexion : réessayez dans {minutes} min.",
                f"Too many refused tries from your connection: try again in {minutes} min.",
            )
        response = v.page("sign_in.html", status=status, name=name, error=message, suite=suite)
        if outcome.retry_after:
            response.headers["Retry-After"] = str(max(1, int(outcome.retry_after)))
        return response
    response = redirect("/connexion/second-facteur" if outcome.stage == "enrol" else suite)
    set_session_cookie(response, request, outcome)
    return response


async def enrolment_page(request: Request) -> Response:
    v = await visit(request, stage="enrol")
    current = v.current
    if current is None:
        return redirect("/connexion")
    access = v.services.desk.access
    secret, uri = access.enrolment(current)
    error = None
    if request.method == "POST":
        try:
            form = await read_form(request)
        except FormTooLarge:
            return refusal_page(v, 413, v.say("Formulaire trop long", "Form too long"), "64 KiB max.")
        if csrf_refused(request, current, form):
            return csrf_page(v)
        outcome = await asyncio.to_thread(
            access.enrol, current, form.get("code", "")[:16], client_address(request), "console"
        )
        if not isinstance(outcome, Refused):
            response = redirect("/")
            set_session_cookie(response, request, outcome)
            return response
        error = v.say(
            "Code refusé : vérifiez l'heure du téléphone et saisissez le code affiché maintenant.",
            "Code refused: check the phone's clock and type the code shown now.",
        )
    grouped = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    return v.page("enrol.html", status=401 if error else 200, qr=qr_svg(uri), secret=grouped, error=error)


async def sign_out(request: Request) -> Response:
    v = await visit(request)
    if v.current is None:
        v = await visit(request, stage="enrol")
    if v.current is None:
        return redirect("/connexion")
    try:
        form = await read_form(request)
    except FormTooLarge:
        form = {}
    if csrf_refused(request, v.current, form):
        return csrf_page(v)
    await asyncio.to_thread(v.services.desk.access.sign_out, v.current, "console")
    response = redirect("/connexion")
    clear_session_cookie(response, request)
    return response


# States


async def states(v: Visit) -> Response:
    snapshot = v.services.snapshot()
    board = board_view(snapshot.settings, snapshot, v.lang)
    return v.page("states.html", board=board, snapshot=snapshot, now=v.services.clock())


# Incidents


def _may_write(current: Current, incident: Incident) -> bool:
    principal = current.principal
    try:
        principal.require_write(incident.components)
    except NotAllowed:
        return False
    return principal.writes_anywhere


def _form_values(v: Visit, **values: Any) -> dict[str, Any]:
    current = signed_in(v)
    settings = v.services.settings
    return {
        "components": component_choices(settings, current.principal, v.lang),
        "states": state_choices(v.lang),
        "impacts": [(i, translate(v.lang, IMPACT_LABELS[i])) for i in IMPACTS],
        "phases": [(p, phase_label(p, v.lang)) for p in LIFECYCLE],
        "rows": range(ROWS),
        **values,
    }


async def incidents(v: Visit) -> Response:
    snapshot = v.services.snapshot()
    links = Links(v.lang)
    settings = snapshot.settings
    listed = []
    seen = set()
    for incident in (*snapshot.open_incidents, *snapshot.recent_incidents):
        if incident.id in seen:
            continue
        seen.add(incident.id)
        names = [component_name(settings, key, links).name for key in incident.components]
        listed.append((incident, names))
    return v.page(
        "incidents.html",
        incidents=listed,
        phase_names={p: phase_label(p, v.lang) for p in PHASES},
        may_open=signed_in(v).principal.writes_anywhere,
    )


def _error_field(exc: IncidentError) -> str:
    return exc.field.split("[")[0]


async def _preview_or_publish(
    v: Visit,
    form: Mapping[str, str],
    draft: Callable[[], Incident],
    publish: Callable[[AuditedDeclarations], Incident],
    render: Callable[..., Response],
) -> Response:
    """A previewed form is published when its fingerprint still matches; otherwise (first submit, or changed since
    its preview) the public page's preview is shown with the form, and the button to publish it."""
    services = v.services
    try:
        shown = draft()
    except IncidentError as exc:
        return render(status=422, error=exc, error_field=_error_field(exc))
    digest = fingerprint(form)
    if form.get("action") == "publish" and form.get("previewed") == digest:
        principal = signed_in(v).principal

        def write() -> Incident:
            writes = AuditedDeclarations(services.store, services.settings, principal, "console", clock=services.clock)
            return publish(writes)

        try:
            done = await asyncio.to_thread(write)
        except IncidentError as exc:
            return render(status=422 if exc.field != "id" else 409, error=exc, error_field=_error_field(exc))
        await services.refresh_overrides()
        return redirect(f"/incidents/{done.id}?publie=1")
    changed = form.get("action") == "publish"  # published with a form changed since its preview: preview again
    preview = preview_incident(services.snapshot(), shown, Links(v.lang), services.clock())
    return render(preview=preview, previewed=digest, changed=changed)


async def new_incident(v: Visit) -> Response:
    current = signed_in(v)
    if not current.principal.writes_anywhere:
        raise NotAllowed(said("this account may not write (viewer)"))
    form = form_of(v)

    def render(status: int = 200, **values: Any) -> Response:
        return v.page("incident_new.html", status=status, **_form_values(v, form=form, **values))

    if v.request.method == "GET":
        return render()
    services = v.services
    now = services.clock()

    def first() -> Any:
        return form_update(form, now), form_text(form, "title"), impact_of(form, required=True)

    def draft() -> Incident:
        update, title, impact = first()
        assert impact is not None
        current.principal.require_write(update.statuses)
        return open_incident(services.settings, title=title, impact=impact, first=update)

    def publish(writes: AuditedDeclarations) -> Incident:
        update, title, impact = first()
        assert impact is not None
        return writes.open_incident(title=title, impact=impact, first=update)

    return await _preview_or_publish(v, form, draft, publish, render)


def _incident_id(v: Visit) -> int:
    raw = str(v.request.path_params["id"])
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 10**12):
        raise NotFound(said("no incident {number!r}", number=raw[:20]))
    return int(raw)


async def incident(v: Visit) -> Response:
    current = signed_in(v)
    services = v.services
    number = _incident_id(v)
    found = await asyncio.to_thread(Declarations(services.store, services.settings).incident, number)
    writable = found.is_open and _may_write(current, found)
    links = Links(v.lang)
    settings = services.settings
    declared = [
        (component_name(settings, key, links).name, d, since) for key, (d, since) in found.declared().items()
    ] if found.is_open else []  # fmt: skip
    locked = [] if writable or not found.is_open else sorted(
        {key.partition(":")[2].split("/")[0] for key in found.components}
        - {n for n in settings.networks if current.principal.may_write(n)}
    )  # fmt: skip
    form = form_of(v)

    def render(status: int = 200, **values: Any) -> Response:
        return v.page(
            "incident.html", status=status,
            **_form_values(v, incident=found, declared=declared, writable=writable, locked=locked, form=form,
                           published=v.request.query_params.get("publie") == "1", **values),
        )  # fmt: skip

    if v.request.method == "GET":
        return render()
    if not writable:
        raise NotAllowed(
            said("incident already resolved") if not found.is_open else
            said("this account may not write on network {network}", network=locked[0] if locked else "?")
        )  # fmt: skip
    now = services.clock()

    def change() -> Any:
        return form_update(form, now, default=found.status), impact_of(form, required=False)

    def draft() -> Incident:
        update, impact = change()
        current.principal.require_write(update.statuses)
        return add_update(found, update, settings, impact=impact)

    def publish(writes: AuditedDeclarations) -> Incident:
        update, impact = change()
        return writes.update_incident(number, update, impact=impact)

    return await _preview_or_publish(v, form, draft, publish, render)


def console_routes() -> list[tuple[str, Handler, list[str]]]:
    return [
        ("/connexion", sign_in_page, ["GET", "POST"]),
        ("/connexion/second-facteur", enrolment_page, ["GET", "POST"]),
        ("/deconnexion", sign_out, ["POST"]),
        ("/", guard_page(states), ["GET"]),
        ("/incidents", guard_page(incidents), ["GET"]),
        ("/incidents/nouveau", guard_page(new_incident), ["GET", "POST"]),
        ("/incidents/{id}", guard_page(incident), ["GET", "POST"]),
    ]
