"""The notifications' metrics, on the app's registry: sent and failed by channel, queue depth, oldest pending age,
dead letters. Gauges are set from the store by the notifier's cycle: a scrape never queries the database."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from ..store.outbox_store import CHANNELS, QueueFigures

__all__ = ["NotifyMetrics"]

QUEUES = (*CHANNELS, "outbox")  # outbox: events not yet fanned out to deliveries


class NotifyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.sent = Counter(
            "tpmon_notifications_sent",
            "Messages sent (e-mails, webhook calls, chat posts)",
            ["channel"],
            registry=registry,
        )
        self.failed = Counter(
            "tpmon_notifications_failed",
            "Failed attempts to send a message (retried or dead)",
            ["channel"],
            registry=registry,
        )
        self.queue = Gauge(
            "tpmon_notifications_queue_depth",
            "Deliveries waiting to be sent (outbox: events to fan out)",
            ["channel"],
            registry=registry,
        )
        self.oldest = Gauge(
            "tpmon_notifications_oldest_pending_age_seconds",
            "Age of the oldest waiting delivery",
            ["channel"],
            registry=registry,
        )
        self.dead = Gauge(
            "tpmon_notifications_dead_letters",
            "Deliveries given up (see tpmon notify list --failed)",
            ["channel"],
            registry=registry,
        )
        for channel in CHANNELS:
            self.sent.labels(channel)
            self.failed.labels(channel)
            self.dead.labels(channel)
        for queue in QUEUES:
            self.queue.labels(queue)
            self.oldest.labels(queue)

    def set_figures(self, figures: QueueFigures) -> None:
        for queue in QUEUES:
            self.queue.labels(queue).set(figures.pending.get(queue, 0))
            self.oldest.labels(queue).set(figures.oldest_seconds.get(queue, 0.0))
        for channel in CHANNELS:
            self.dead.labels(channel).set(figures.failed.get(channel, 0))
