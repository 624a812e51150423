"""E-mail out through SMTP: the server from `$TPMON_SMTP_URL`, a few kept-alive connections, failures sorted into
temporary (retry later) and permanent (a dead letter)."""

from __future__ import annotations

import contextlib
import smtplib
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import MonitorError
from ..i18n import said

__all__ = ["SMTP_ENV", "SendFailed", "SmtpSender", "SmtpSettings", "smtp_settings"]

SMTP_ENV = "TPMON_SMTP_URL"


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: str  # plain, starttls or tls
    user: str = ""
    password: str = ""
    timeout: float = 30.0

    def __repr__(self) -> str:  # never the password
        return f"SmtpSettings({self.security}://{self.host}:{self.port}, user={'set' if self.user else 'none'})"


def smtp_settings(environ: Mapping[str, str]) -> SmtpSettings:
    """`smtp://[user:password@]host[:port][?starttls=true]` or `smtps://…` (TLS from the start)."""
    url = environ.get(SMTP_ENV, "").strip()
    if not url:
        example = "smtp://user:password@mail.example:587?starttls=true"
        raise MonitorError(said("notifications: set {variable}, e.g. {example}", variable=SMTP_ENV, example=example))
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise MonitorError(said("{variable}: must look like smtp://host:port or smtps://host:port", variable=SMTP_ENV))
    starttls = parse_qs(parts.query).get("starttls", ["false"])[0].lower() in ("1", "true", "yes")
    security = "tls" if parts.scheme == "smtps" else "starttls" if starttls else "plain"
    try:
        port = parts.port or (465 if security == "tls" else 587 if starttls else 25)
    except ValueError:
        raise MonitorError(said("{variable}: the port is not a number", variable=SMTP_ENV)) from None
    return SmtpSettings(parts.hostname, port, security, unquote(parts.username or ""), unquote(parts.password or ""))


class SendFailed(Exception):
    """An e-mail was not accepted; `permanent` when trying again cannot help (the server refused the address)."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class SmtpSender:
    """Sends from any thread; each thread keeps its own connection open between messages."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._local = threading.local()
        self._all: list[smtplib.SMTP] = []
        self._lock = threading.Lock()

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                s.host, s.port, timeout=s.timeout, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            if s.security == "starttls":
                client.starttls(context=ssl.create_default_context())
        if s.user:
            client.login(s.user, s.password)
        with self._lock:
            self._all.append(client)
        return client

    def send(self, message: bytes, sender: str, to: str) -> None:
        """Send one message to one address; SendFailed says why, in one line without secrets."""
        for attempt in (1, 2):  # a kept-alive connection may have been closed by the server meanwhile
            client: smtplib.SMTP | None = getattr(self._local, "client", None)
            try:
                if client is None:
                    client = self._local.client = self._connect()
                client.sendmail(sender, [to], message)
                return
            except smtplib.SMTPServerDisconnected as exc:
                self._drop()
                if attempt == 2:
                    raise SendFailed(f"SMTP server disconnected: {exc}", permanent=False) from None
            except smtplib.SMTPRecipientsRefused as exc:
                code, reply = next(iter(exc.recipients.values()))
                raise SendFailed(f"SMTP {code} {_reply(reply)}", permanent=code >= 500) from None
            except smtplib.SMTPResponseException as exc:
                if exc.smtp_code == 421:  # the server is closing the connection
                    self._drop()
                raise SendFailed(
                    f"SMTP {exc.smtp_code} {_reply(exc.smtp_error)}", permanent=exc.smtp_code >= 500
                ) from None
            except (OSError, smtplib.SMTPException) as exc:
                self._drop()
                raise SendFailed(f"SMTP {type(exc).__name__}: {exc}"[:300], permanent=False) from None

    def _drop(self) -> None:
        client = getattr(self._local, "client", None)
        self._local.client = None
        if client is not None:
            with contextlib.suppress(OSError):
                client.close()

    def close(self) -> None:
        with self._lock:
            clients, self._all = self._all, []
        for client in clients:
            try:
                client.quit()
            except (OSError, smtplib.SMTPException):
                client.close()


def _reply(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return " ".join(text.split())[:200]
