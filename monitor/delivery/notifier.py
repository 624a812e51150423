"""The notifier: every second, fan new outbox events out to deliveries, then claim what is due, send it (e-mail,
webhooks, chat) and settle it. Blocking work runs on its own thread, never on the event loop.

At least once: a delivery is settled only after it was sent; a sender that dies in between leaves its claim to
expire and the message goes out again with the same Message-ID / webhook-id. The store down: nothing is lost, the
events wait in the outbox and the next cycle retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ..config import Settings
from ..errors import StoreError
from ..i18n import LANGS
from ..notify.messages import Mime, chat_text, confirmation_letter, events_letter
from ..notify.payloads import event_payload
from ..notify.scopes import scope_label
from ..notify.tokens import Signer
from ..store.outbox_store import Channel, Claimed, Outbox
from ..store.store import Store
from ..store.subscriber_store import Subscribers
from ..store.webhook_store import Webhook, Webhooks
from .chat_sender import ChatSender
from .notify_metrics import NotifyMetrics
from .smtp_sender import SendFailed, SmtpSender
from .webhook_sender import WebhookSender

__all__ = ["CycleReport", "Notifier", "links"]

log = logging.getLogger("tpmon.notify")

HOUSEKEEPING_EVERY = timedelta(minutes=10)


def utcnow() -> datetime:
    return datetime.now(UTC)


def links(settings: Settings) -> tuple[str, str]:
    """(confirmation, unsubscribe) addresses of the site, to which `?t=TOKEN` is added."""
    base = settings.links_base()
    return f"{base}/abonnement/confirmer", f"{base}/abonnement/desinscription"


@dataclass
class CycleReport:
    fanned_out: int = 0
    sent: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)

    @property
    def busy(self) -> bool:
        return bool(self.fanned_out or any(self.sent.values()) or any(self.failed.values()))


class Notifier:
    """Owned by the app's lifespan (or `tpmon notify run`). `cycle()` is blocking; `start()` runs it every
    `interval` seconds on a thread of its own."""

    def __init__(
        self,
        store: Store,
        settings: Callable[[], Settings],
        signer: Signer | None,
        *,
        smtp: SmtpSender | None = None,
        environ: Mapping[str, str] | None = None,
        webhook_sender: WebhookSender | None = None,
        metrics: NotifyMetrics | None = None,
        clock: Callable[[], datetime] = utcnow,
        owner: str | None = None,
        workers: int = 8,
        batch: int = 200,
    ) -> None:
        self.store = store
        self.settings = settings
        self.signer = signer
        self.smtp = smtp
        self.chat = ChatSender(os.environ if environ is None else environ)
        self.webhook_sender = webhook_sender or WebhookSender()
        self.metrics = metrics
        self.clock = clock
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.batch = batch
        self.outbox = Outbox(store, clock=clock)
        self.subscribers = Subscribers(store, clock=clock)
        self.webhooks = Webhooks(store, clock=clock)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tpmon-send")
        self._cycler = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tpmon-notify")
        self._task: asyncio.Task[None] | None = None
        self._housekept: datetime | None = None
        self._letters: dict[tuple[int, ...], Mime | None] = {}  # one encoding per set of events told
        self._hooks: dict[int, Webhook] = {}
        self.may_run: Callable[[], bool] = lambda: True  # several instances: only the leader's cycles run

    # --- one cycle ---------------------------------------------------------------------------------------------
    def cycle(self, budget: float = 5.0) -> CycleReport:
        """Fan out, then send what is due on every channel, for about `budget` seconds at most."""
        report = CycleReport()
        settings = self.settings()
        started = time.monotonic()
        while time.monotonic() - started < budget:
            count = self.outbox.fan_out(settings, limit=self.batch)
            report.fanned_out += count
            if count < self.batch:
                break
        notifications = settings.notifications
        if notifications is not None:
            self._letters.clear()
            senders: dict[Channel, Callable[[Claimed, Settings], None]] = {
                "email": self._email,
                "webhook": self._webhook,
                "chat": self._chat,
            }
            self._hooks = {hook.id: hook for hook in self.webhooks.all()}
            for channel, send in senders.items():
                if channel == "email" and self.smtp is None:
                    continue
                while time.monotonic() - started < budget:
                    claimed = self.outbox.claim(channel, self.owner, notifications.lease, groups=self.batch)
                    if not claimed:
                        break
                    self._send_all(channel, claimed, send, settings, report)
        self._housekeeping(settings)
        if self.metrics is not None:
            self.metrics.set_figures(self.outbox.figures())
        return report

    def _send_all(
        self,
        channel: Channel,
        claimed: list[Claimed],
        send: Callable[[Claimed, Settings], None],
        settings: Settings,
        report: CycleReport,
    ) -> None:
        notifications = settings.notifications
        assert notifications is not None

        def attempt(message: Claimed) -> SendFailed | None:
            try:
                send(message, settings)
            except SendFailed as exc:
                return exc
            except Exception as exc:  # a bug must not lose the claim silently: retried, and logged
                log.exception("sending %s message %s failed unexpectedly", channel, message.key)
                return SendFailed(f"internal error ({type(exc).__name__})", permanent=False)
            return None

        if channel == "webhook":  # in order for each webhook; webhooks in parallel
            by_hook: dict[int | None, list[Claimed]] = {}
            for message in claimed:
                by_hook.setdefault(message.webhook, []).append(message)
            claimed = [message for group in by_hook.values() for message in group]
            results = self._pool.map(lambda group: [attempt(message) for message in group], by_hook.values())
            outcomes = [outcome for group in results for outcome in group]
        else:
            outcomes = list(self._pool.map(attempt, claimed))
        done = [
            d for message, failure in zip(claimed, outcomes, strict=True) if failure is None for d in message.deliveries
        ]
        self.outbox.sent(done)
        sent = sum(1 for failure in outcomes if failure is None)
        report.sent[channel] = report.sent.get(channel, 0) + sent
        if self.metrics is not None and sent:
            self.metrics.sent.labels(channel).inc(sent)
        for message, failure in zip(claimed, outcomes, strict=True):
            if failure is None:
                continue
            report.failed[channel] = report.failed.get(channel, 0) + 1
            if self.metrics is not None:
                self.metrics.failed.labels(channel).inc()
            final = failure.permanent
            if channel == "webhook" and message.webhook is not None:
                disable_after = timedelta(seconds=notifications.webhook_disable_after)
                if self.webhooks.failed(message.webhook, disable_after):
                    log.warning("webhook %s disabled: failing for %s", message.webhook, disable_after)
                    final = True
            dead = self.outbox.failed(
                message.deliveries,
                str(failure),
                retry_after=notifications.retry_after,
                max_attempts=notifications.max_attempts,
                final=final,
            )
            log.warning("%s message %s not sent%s: %s", channel, message.key, " (dead letter)" if dead else "", failure)

    # --- the channels --------------------------------------------------------------------------------------------
    def _email(self, message: Claimed, settings: Settings) -> None:
        notifications, signer = settings.notifications, self.signer
        assert notifications is not None
        assert self.smtp is not None
        if signer is None:
            raise SendFailed("no notifications secret", permanent=False)
        subscriber = message.subscriber or 0
        confirm_base, unsubscribe_base = links(settings)
        unsubscribe = f"{unsubscribe_base}?t={signer.unsubscribe_token(subscriber, message.address)}"
        domain = notifications.sender.rpartition("@")[2]
        if message.kind == "confirm":
            scopes = tuple(str(s) for s in message.payload.get("scopes", ()))
            lang = str(message.payload.get("lang", "fr"))
            token = signer.confirm_token(subscriber, message.address, scopes, lang)
            names = {lang: [scope_label(s, settings, lang) for s in scopes] for lang in LANGS}
            hours = notifications.confirm_within / 3600
            letter = confirmation_letter(names, f"{confirm_base}?t={token}", hours, settings)
            mime: Mime | None = Mime(letter, sender=notifications.sender, list_id=f"<changements.{domain}>")
        else:
            key = tuple(event.id for event in message.events)
            if key not in self._letters:
                built = events_letter(message.events, settings)
                self._letters[key] = (
                    Mime(built, sender=notifications.sender, list_id=f"<changements.{domain}>") if built else None
                )
            mime = self._letters[key]
        if mime is None:
            return  # nothing left to tell (the config no longer knows these lines): settled as sent
        email = mime.bytes_for(
            to=message.address,
            message_id=f"<{message.key}.{subscriber}@{domain}>",
            unsubscribe_url=unsubscribe,
            now=self.clock(),
        )
        self.smtp.send(email, notifications.sender, message.address)

    def _webhook(self, message: Claimed, settings: Settings) -> None:
        hook: Webhook | None = self._hooks.get(message.webhook or 0)
        if hook is None or not hook.enabled:
            raise SendFailed("webhook removed or disabled", permanent=True)
        if self.signer is None:
            raise SendFailed("no notifications secret", permanent=False)
        for event in message.events:
            payload = event_payload(event, settings)
            secret = self.signer.webhook_secret(hook.salt)
            self.webhook_sender.send(hook.url, secret, f"tpmon-{event.id}", payload, allow_private=hook.allow_private)
        if hook.failing_since is not None:
            self.webhooks.succeeded(hook.id)

    def _chat(self, message: Claimed, settings: Settings) -> None:
        notifications = settings.notifications
        assert notifications is not None
        channel = next((c for c in notifications.chat if c.name == message.chat), None)
        if channel is None:
            raise SendFailed(f"no chat channel {message.chat!r} in the config", permanent=True)
        text = chat_text(message.events, settings)
        if text is not None:
            self.chat.send(channel, *text)

    def _housekeeping(self, settings: Settings) -> None:
        now = self.clock()
        if self._housekept is not None and now - self._housekept < HOUSEKEEPING_EVERY:
            return
        self._housekept = now
        notifications = settings.notifications
        keep = timedelta(seconds=notifications.keep if notifications else 30 * 86400)
        pruned = self.outbox.prune(keep)
        if notifications is not None:
            pruned += self.subscribers.prune_unconfirmed(timedelta(seconds=notifications.confirm_within))
        if pruned:
            log.info("notifications: pruned %d old rows", pruned)

    # --- running ----------------------------------------------------------------------------------------------
    async def start(self, interval: float = 1.0) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(interval), name="tpmon-notifier")

    async def _run(self, interval: float) -> None:
        loop = asyncio.get_running_loop()
        failing = False
        while True:
            if not self.may_run():
                await asyncio.sleep(interval)
                continue
            try:
                report = await loop.run_in_executor(self._cycler, self.cycle)
            except StoreError as exc:  # the store is down: the events wait in the outbox
                if not failing:
                    log.warning("notifications paused, the store is unreachable: %s", exc)
                failing = True
                await asyncio.sleep(interval * 2)
                continue
            except Exception:
                log.exception("notification cycle failed")
                await asyncio.sleep(interval * 2)
                continue
            if failing:
                log.info("notifications resumed")
                failing = False
            if not report.busy:
                await asyncio.sleep(interval)

    async def stop(self, grace: float = 10.0) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.run_in_executor(None, self._cycler.shutdown, True), grace)
        self._pool.shutdown(wait=False)
        if self.smtp is not None:
            await loop.run_in_executor(None, self.smtp.close)
