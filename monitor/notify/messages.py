"""How a change reads: e-mails (plain text and HTML, French then English) and chat texts, built from outbox events.

State in words (never a colour alone), Paris time, a link to the line's page, no tracking: no image, no pixel, no
redirect, every link a plain address of the site. A message may tell several events (coalesced), oldest first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.quoprimime import body_encode
from email.utils import format_datetime as rfc2822
from typing import Any

from markupsafe import Markup, escape

from ..config import Notifications, Settings
from ..i18n import LANGS, STATE_LABELS, Lang, format_datetime, format_percent
from ..models import State
from .events import Event
from .scopes import affected_lines

__all__ = ["Block", "Letter", "Mime", "blocks", "chat_text", "confirmation_letter", "events_letter"]

_SITE = {"fr": "État du tiers payant", "en": "Tiers-payant status"}
_INCIDENT_PHASES = {
    "opened": {"fr": "Incident ouvert", "en": "Incident opened"},
    "updated": {"fr": "Incident mis à jour", "en": "Incident updated"},
    "resolved": {"fr": "Incident résolu", "en": "Incident resolved"},
}
_WINDOW_PHASES = {
    "announced": {"fr": "Maintenance annoncée", "en": "Maintenance announced"},
    "cancelled": {"fr": "Maintenance annulée", "en": "Maintenance cancelled"},
}
_STATUS = {
    "investigating": {"fr": "recherche en cours", "en": "investigating"},
    "identified": {"fr": "cause identifiée", "en": "identified"},
    "monitoring": {"fr": "sous surveillance", "en": "monitoring"},
    "resolved": {"fr": "résolu", "en": "resolved"},
}


@dataclass(frozen=True)
class Block:
    """One event told in one language: a heading, lines of text, and the page to read more."""

    heading: str
    lines: tuple[str, ...]
    url: str


@dataclass(frozen=True)
class Letter:
    """An e-mail before its addressee: subject, text and HTML bodies with `{unsubscribe}` left to fill."""

    subject: str
    text: str
    html: str


def _line_name(settings: Settings, line: str, lang: Lang) -> str:
    network, _, name = line.partition("/")
    found = settings.networks.get(network)
    label = settings.lines.get(name)
    return f"{found.name if found else network} — {getattr(label.label, lang) if label else name}"


def _state_words(state: State, progress: float, lang: Lang) -> str:
    words = STATE_LABELS[state][lang]
    if state is State.RECOVERING and progress > 0:
        share = format_percent(progress, lang, digits=0)
        words += (
            f" (environ {share} des demandes aboutissent)"
            if lang == "fr"
            else f" (about {share} of requests go through)"
        )
    return words


def _text(value: Any, lang: Lang) -> str:
    if not isinstance(value, Mapping):
        return ""
    chosen = str(value.get(lang) or "").strip()
    return chosen or str(value.get("fr") or "").strip()


def _line_block(event: Event, settings: Settings, base: str, lang: Lang) -> Block:
    payload = event.payload
    line = str(payload.get("line", ""))
    state = State(payload.get("state", "unknown"))
    before = State(payload.get("told_previous", payload.get("previous", "unknown")))
    was = "avant" if lang == "fr" else "before"
    since = "depuis le" if lang == "fr" else "since"
    lines = [
        f"{_state_words(state, float(payload.get('progress', 0.0)), lang)} ({was} : {STATE_LABELS[before][lang]})"
        if lang == "fr"
        else f"{_state_words(state, float(payload.get('progress', 0.0)), lang)} ({was}: {STATE_LABELS[before][lang]})",
        f"{since} {format_datetime(event.at, lang)}",
    ]
    if state is State.MAINTENANCE:
        lines.append("Maintenance commencée." if lang == "fr" else "Maintenance started.")
    elif before is State.MAINTENANCE:
        lines.append("Maintenance terminée." if lang == "fr" else "Maintenance ended.")
    return Block(_line_name(settings, line, lang), tuple(lines), f"{base}/reseaux/{line}")


def _incident_block(event: Event, settings: Settings, base: str, lang: Lang) -> Block:
    payload = event.payload
    phase = _INCIDENT_PHASES.get(str(payload.get("phase")), _INCIDENT_PHASES["updated"])[lang]
    status = _STATUS.get(str(payload.get("status")), {"fr": "", "en": ""})[lang]
    lines = [f"{phase} ({status}), {format_datetime(event.at, lang)}"]
    names = sorted(_line_name(settings, line, lang) for line in affected_lines(event, settings))
    if names:
        lines.append(("Concerne : " if lang == "fr" else "Affects: ") + ", ".join(names))
    for key, label in (
        ("message", {"fr": "Message", "en": "Message"}),
        ("practitioner_consigne", {"fr": "Consigne pour les professionnels", "en": "What practitioners should do"}),
        ("member_consigne", {"fr": "Consigne pour les assurés", "en": "What insured members should do"}),
    ):
        text = _text(payload.get(key), lang)
        if text:
            lines.append(f"{label[lang]} : {text}" if lang == "fr" else f"{label[lang]}: {text}")
    heading = _text(payload.get("title"), lang)
    return Block(heading, tuple(lines), f"{base}/incidents/{payload.get('incident')}")


def _window_block(event: Event, settings: Settings, base: str, lang: Lang) -> Block:
    payload = event.payload
    phase = _WINDOW_PHASES.get(str(payload.get("phase")), _WINDOW_PHASES["announced"])[lang]
    lines = [phase]
    try:
        start = datetime.fromisoformat(str(payload.get("start_local")))
        hours = float(payload.get("duration_s", 0)) / 3600
        when = f"{start:%d/%m/%Y %H:%M}"
        lines.append(
            f"Début : {when} (heure de Paris), durée : {hours:g} h"
            if lang == "fr"
            else f"Start: {when} (Paris time), duration: {hours:g} h"
        )
    except ValueError:
        pass
    names = sorted(_line_name(settings, line, lang) for line in affected_lines(event, settings))
    if names:
        lines.append(("Concerne : " if lang == "fr" else "Affects: ") + ", ".join(names))
    return Block(_text(payload.get("title"), lang), tuple(lines), f"{base}/")


def blocks(events: Sequence[Event], settings: Settings, lang: Lang) -> list[Block]:
    """Each event told in `lang`, in the order given."""
    base = settings.notifications.public_url.rstrip("/") if settings.notifications else ""
    build = {"line": _line_block, "incident": _incident_block, "maintenance": _window_block}
    return [build[event.kind](event, settings, base, lang) for event in events if event.kind in build]


def _subject(first: Block, count: int) -> str:
    more = f" (+{count - 1})" if count > 1 else ""
    return f"[{_SITE['fr']}] {first.heading} : {first.lines[0]}{more}"


_FOOTER = {
    "fr": (
        "Vous recevez ce message parce que cette adresse s'est abonnée aux changements de la page d'état. "
        "Se désabonner en un clic (l'adresse est alors effacée) :\n{unsubscribe}\n"
        "Responsable du traitement : {controller}. Contact : {contact}. Confidentialité : {privacy}"
    ),
    "en": (
        "You receive this message because this address subscribed to the status page's changes. "
        "Unsubscribe in one click (the address is then erased):\n{unsubscribe}\n"
        "Data controller: {controller}. Contact: {contact}. Privacy: {privacy}"
    ),
}


def _footer(notifications: Notifications, lang: Lang) -> str:
    privacy = f"{notifications.public_url.rstrip('/')}/confidentialite"
    text = _FOOTER[lang].replace("{controller}", notifications.controller).replace("{contact}", notifications.contact)
    return text.replace("{privacy}", privacy)


def _text_body(by_lang: Mapping[Lang, list[Block]], footers: Mapping[Lang, str]) -> str:
    parts = []
    for lang in LANGS:
        title = _SITE[lang] + (" — changements" if lang == "fr" else " — changes")
        section = [title if lang == "fr" else f"--- English ---\n{title}", ""]
        for block in by_lang[lang]:
            section += [block.heading, *(f"  {line}" for line in block.lines), f"  {block.url}", ""]
        section.append(footers[lang])
        parts.append("\n".join(section))
    return "\n\n".join(parts) + "\n"


def _html_body(by_lang: Mapping[Lang, list[Block]], footers: Mapping[Lang, str]) -> str:
    parts = ['<!doctype html>\n<html lang="fr">\n<head><meta charset="utf-8"><title>', escape(_SITE["fr"])]
    parts.append("</title></head>\n<body>\n")
    for lang in LANGS:
        title = _SITE[lang] + (" — changements" if lang == "fr" else " — changes")
        parts.append(f'<section lang="{lang}">\n<h1>{escape(title)}</h1>\n')
        for block in by_lang[lang]:
            items = "".join(f"<li>{escape(line)}</li>" for line in block.lines)
            link = escape(block.url)
            parts.append(f'<h2>{escape(block.heading)}</h2>\n<ul>{items}</ul>\n<p><a href="{link}">{link}</a></p>\n')
        footer = escape(footers[lang]).replace("\n", Markup("<br>\n"))
        parts.append(f"<p><small>{footer}</small></p>\n</section>\n<hr>\n")
    parts.append("</body>\n</html>\n")
    return "".join(str(part) for part in parts)


def events_letter(events: Sequence[Event], settings: Settings) -> Letter | None:
    """The message telling `events` (coalesced), or None if none of them can be told."""
    if settings.notifications is None:
        return None
    by_lang: dict[Lang, list[Block]] = {lang: blocks(events, settings, lang) for lang in LANGS}
    if not by_lang["fr"]:
        return None
    footers = {lang: _footer(settings.notifications, lang) for lang in LANGS}
    return Letter(
        _subject(by_lang["fr"][-1], len(by_lang["fr"])), _text_body(by_lang, footers), _html_body(by_lang, footers)
    )


def confirmation_letter(
    scope_names: Mapping[Lang, Sequence[str]], confirm_url: str, hours: float, notifications: Notifications
) -> Letter:
    """The double opt-in message: the link to confirm, and what happens if nobody does."""
    texts = {
        "fr": (
            "Quelqu'un (vous, sans doute) a demandé à recevoir par courriel les changements de : "
            f"{', '.join(scope_names['fr'])}.\n"
            f"Pour confirmer, ouvrez ce lien dans les {hours:g} heures : {confirm_url}\n"
            "Sans confirmation, rien ne vous sera envoyé et l'adresse sera effacée."
        ),
        "en": (
            f"Someone (probably you) asked to receive by e-mail the changes of: {', '.join(scope_names['en'])}.\n"
            f"To confirm, open this link within {hours:g} hours: {confirm_url}\n"
            "Without confirmation nothing will be sent to you and the address will be erased."
        ),
    }
    footers = {lang: _footer(notifications, lang) for lang in LANGS}
    text = "\n\n".join(f"{_SITE[lang]}\n\n{texts[lang]}\n\n{footers[lang]}" for lang in LANGS) + "\n"
    html = [
        '<!doctype html>\n<html lang="fr">\n<head><meta charset="utf-8"><title>Confirmation</title></head>\n<body>\n'
    ]
    for lang in LANGS:
        body = escape(texts[lang]).replace("\n", Markup("<br>\n"))
        link = escape(confirm_url)
        footer = escape(footers[lang]).replace("\n", Markup("<br>\n"))
        html.append(
            f'<section lang="{lang}">\n<h1>{escape(_SITE[lang])}</h1>\n<p>{body}</p>\n'
            f'<p><a href="{link}">{"Confirmer l’abonnement" if lang == "fr" else "Confirm the subscription"}</a></p>\n'
            f"<p><small>{footer}</small></p>\n</section>\n<hr>\n"
        )
    html.append("</body>\n</html>\n")
    subject = f"[{_SITE['fr']}] Confirmez votre abonnement / Confirm your subscription"
    return Letter(subject, text, "".join(str(part) for part in html))


class Mime:
    """A letter as MIME bytes, encoded once (quoted-printable, CRLF): each addressee only fills in its own header
    lines and unsubscribe address. Building an `EmailMessage` per addressee costs ~20× more."""

    def __init__(self, letter: Letter, *, sender: str, list_id: str) -> None:
        boundary = "==tpmon-" + hashlib.blake2b(letter.text.encode(), digest_size=8).hexdigest()
        subject = Header(letter.subject, "utf-8").encode(linesep="\r\n")
        self._head = (
            f"From: {sender}\r\nSubject: {subject}\r\nList-Id: {list_id}\r\n"
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\nAuto-Submitted: auto-generated\r\n"
            "Content-Language: fr, en\r\nMIME-Version: 1.0\r\n"
            f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'
        ).encode("ascii")
        self._parts = [self._part(boundary, "plain", letter.text), self._part(boundary, "html", letter.html)]
        self._end = f"--{boundary}--\r\n".encode("ascii")

    @staticmethod
    def _part(boundary: str, subtype: str, body: str) -> list[bytes]:
        """The part's bytes around each `{unsubscribe}` (alone on its line: quoted-printable stays line by line)."""
        head = (
            f'--{boundary}\r\nContent-Type: text/{subtype}; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        pieces = body.split("{unsubscribe}")
        # quoprimime wants the charset's bytes as latin-1 text, as email.charset hands them
        latin = [piece.encode("utf-8").decode("latin-1") for piece in pieces]
        encoded = [body_encode(piece, maxlinelen=76, eol="\r\n").encode("ascii") for piece in latin]
        encoded[0] = head.encode("ascii") + encoded[0]
        encoded[-1] += b"\r\n"
        return encoded

    def bytes_for(self, *, to: str, message_id: str, unsubscribe_url: str, now: datetime) -> bytes:
        """The whole e-mail to `to` (ASCII addresses and URL), with a stable Message-ID and one-click unsubscribe
        (RFC 8058)."""
        head = (
            f"To: {to}\r\nDate: {rfc2822(now)}\r\nMessage-ID: {message_id}\r\nList-Unsubscribe: <{unsubscribe_url}>\r\n"
        ).encode("ascii")
        link = body_encode(unsubscribe_url, maxlinelen=76, eol="\r\n").encode("ascii")
        body = b"".join(link.join(part) for part in self._parts)
        return head + self._head + body + self._end


def chat_text(events: Sequence[Event], settings: Settings) -> tuple[str, str] | None:
    """A title and a body for a chat channel: one line per event, French then English."""
    french, english = blocks(events, settings, "fr"), blocks(events, settings, "en")
    if not french:
        return None
    lines = [f"{b.heading} : {b.lines[0]} — {b.url}" for b in french]
    lines += [f"{b.heading}: {b.lines[0]} — {b.url}" for b in english]
    return f"{_SITE['fr']} : {french[-1].heading}", "\n".join(lines)
