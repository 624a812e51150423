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

from ..config import Settings
from ..i18n import LANGS, N_, PARIS, STATE_LABELS, Lang, format_datetime, format_decimal, format_percent, translate
from ..models import State
from .events import Event
from .scopes import affected_lines

__all__ = ["Block", "Letter", "Mime", "blocks", "chat_text", "confirmation_letter", "events_letter"]

_SITE = N_("Tiers-payant status")
_INCIDENT_PHASES = {
    "opened": N_("Incident opened"),
    "updated": N_("Incident updated"),
    "resolved": N_("Incident resolved"),
}
_WINDOW_PHASES = {
    "announced": N_("Maintenance announced"),
    "cancelled": N_("Maintenance cancelled"),
}
_STATUS = {
    "investigating": N_("investigating"),
    "identified": N_("identified"),
    "monitoring": N_("monitoring"),
    "resolved": N_("resolved"),
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
        return translate(lang, "%(state)s (about %(share)s of requests go through)") % {"state": words, "share": share}
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
    words = _state_words(state, float(payload.get("progress", 0.0)), lang)
    lines = [
        translate(lang, "%(state)s (before: %(previous)s)") % {"state": words, "previous": STATE_LABELS[before][lang]},
        translate(lang, "since %(when)s") % {"when": format_datetime(event.at, lang)},
    ]
    if state is State.MAINTENANCE:
        lines.append(translate(lang, "Maintenance started."))
    elif before is State.MAINTENANCE:
        lines.append(translate(lang, "Maintenance ended."))
    return Block(_line_name(settings, line, lang), tuple(lines), f"{base}/reseaux/{line}")


def _affects(names: list[str], lang: Lang) -> str:
    return translate(lang, "Affects: %(names)s") % {"names": ", ".join(names)}


def _incident_block(event: Event, settings: Settings, base: str, lang: Lang) -> Block:
    payload = event.payload
    phase = translate(lang, _INCIDENT_PHASES.get(str(payload.get("phase")), _INCIDENT_PHASES["updated"]))
    status = _STATUS.get(str(payload.get("status")))
    lines = [f"{phase} ({translate(lang, status) if status else ''}), {format_datetime(event.at, lang)}"]
    names = sorted(_line_name(settings, line, lang) for line in affected_lines(event, settings))
    if names:
        lines.append(_affects(names, lang))
    for key, label in (
        ("message", N_("Message: %(text)s")),
        ("practitioner_consigne", N_("What practitioners should do: %(text)s")),
        ("member_consigne", N_("What insured members should do: %(text)s")),
    ):
        text = _text(payload.get(key), lang)
        if text:
            lines.append(translate(lang, label) % {"text": text})
    heading = _text(payload.get("title"), lang)
    return Block(heading, tuple(lines), f"{base}/incidents/{payload.get('incident')}")


def _window_block(event: Event, settings: Settings, base: str, lang: Lang) -> Block:
    payload = event.payload
    lines = [translate(lang, _WINDOW_PHASES.get(str(payload.get("phase")), _WINDOW_PHASES["announced"]))]
    try:
        start = datetime.fromisoformat(str(payload.get("start_local")))
        hours = float(payload.get("duration_s", 0)) / 3600
        when = format_datetime(start if start.tzinfo else start.replace(tzinfo=PARIS), lang)
        duration = format_decimal(round(hours, 2), lang)
        lines.append(
            translate(lang, "Start: %(when)s (Paris time), duration: %(hours)s h") % {"when": when, "hours": duration}
        )
    except ValueError:
        pass
    names = sorted(_line_name(settings, line, lang) for line in affected_lines(event, settings))
    if names:
        lines.append(_affects(names, lang))
    return Block(_text(payload.get("title"), lang), tuple(lines), f"{base}/")


def blocks(events: Sequence[Event], settings: Settings, lang: Lang) -> list[Block]:
    """Each event told in `lang`, in the order given."""
    base = settings.links_base()
    build = {"line": _line_block, "incident": _incident_block, "maintenance": _window_block}
    return [build[event.kind](event, settings, base, lang) for event in events if event.kind in build]


def _subject(first: Block, count: int) -> str:
    more = f" (+{count - 1})" if count > 1 else ""
    said = translate("fr", "[%(site)s] %(heading)s: %(what)s") % {
        "site": translate("fr", _SITE),
        "heading": first.heading,
        "what": first.lines[0],
    }
    return said + more


_FOOTER = N_(
    "You receive this message because this address subscribed to the status page's changes. "
    "Unsubscribe in one click (the address is then erased):\n%(unsubscribe)s\n"
    "Data controller: %(controller)s. Contact: %(contact)s. Privacy: %(privacy)s"
)


def _footer(settings: Settings, lang: Lang) -> str:
    notifications = settings.notifications
    assert notifications is not None
    privacy = f"{settings.links_base()}/confidentialite"
    return translate(lang, _FOOTER) % {
        "unsubscribe": "{unsubscribe}",  # each addressee's own address, filled in by `Mime`
        "controller": notifications.controller,
        "contact": notifications.contact,
        "privacy": privacy,
    }


def _changes(lang: Lang) -> str:
    return translate(lang, "%(site)s — changes") % {"site": translate(lang, _SITE)}


def _text_body(by_lang: Mapping[Lang, list[Block]], footers: Mapping[Lang, str]) -> str:
    parts = []
    for lang in LANGS:
        title = _changes(lang)
        section = [title if lang == LANGS[0] else f"--- English ---\n{title}", ""]
        for block in by_lang[lang]:
            section += [block.heading, *(f"  {line}" for line in block.lines), f"  {block.url}", ""]
        section.append(footers[lang])
        parts.append("\n".join(section))
    return "\n\n".join(parts) + "\n"


def _html_body(by_lang: Mapping[Lang, list[Block]], footers: Mapping[Lang, str]) -> str:
    parts = ['<!doctype html>\n<html lang="fr">\n<head><meta charset="utf-8"><title>', escape(translate("fr", _SITE))]
    parts.append("</title></head>\n<body>\n")
    for lang in LANGS:
        title = _changes(lang)
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
    footers = {lang: _footer(settings, lang) for lang in LANGS}
    return Letter(
        _subject(by_lang["fr"][-1], len(by_lang["fr"])), _text_body(by_lang, footers), _html_body(by_lang, footers)
    )


def confirmation_letter(
    scope_names: Mapping[Lang, Sequence[str]], confirm_url: str, hours: float, settings: Settings
) -> Letter:
    """The double opt-in message: the link to confirm, and what happens if nobody does."""
    texts = {
        lang: translate(
            lang,
            "Someone (probably you) asked to receive by e-mail the changes of: %(scopes)s.\n"
            "To confirm, open this link within %(hours)s hours: %(url)s\n"
            "Without confirmation nothing will be sent to you and the address will be erased.",
        )
        % {"scopes": ", ".join(scope_names[lang]), "hours": format_decimal(hours, lang), "url": confirm_url}
        for lang in LANGS
    }
    footers = {lang: _footer(settings, lang) for lang in LANGS}
    sites = {lang: translate(lang, _SITE) for lang in LANGS}
    text = "\n\n".join(f"{sites[lang]}\n\n{texts[lang]}\n\n{footers[lang]}" for lang in LANGS) + "\n"
    html = [
        '<!doctype html>\n<html lang="fr">\n<head><meta charset="utf-8"><title>Confirmation</title></head>\n<body>\n'
    ]
    for lang in LANGS:
        body = escape(texts[lang]).replace("\n", Markup("<br>\n"))
        link = escape(confirm_url)
        footer = escape(footers[lang]).replace("\n", Markup("<br>\n"))
        html.append(
            f'<section lang="{lang}">\n<h1>{escape(sites[lang])}</h1>\n<p>{body}</p>\n'
            f'<p><a href="{link}">{escape(translate(lang, "Confirm the subscription"))}</a></p>\n'
            f"<p><small>{footer}</small></p>\n</section>\n<hr>\n"
        )
    html.append("</body>\n</html>\n")
    asked = " / ".join(translate(lang, "Confirm your subscription") for lang in LANGS)
    subject = f"[{sites['fr']}] {asked}"
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
    told = {lang: blocks(events, settings, lang) for lang in LANGS}
    if not told["fr"]:
        return None
    lines = [
        translate(lang, "%(heading)s: %(what)s — %(url)s") % {"heading": b.heading, "what": b.lines[0], "url": b.url}
        for lang in LANGS
        for b in told[lang]
    ]
    title = translate("fr", "%(site)s: %(heading)s") % {
        "site": translate("fr", _SITE),
        "heading": told["fr"][-1].heading,
    }
    return title, "\n".join(lines)
