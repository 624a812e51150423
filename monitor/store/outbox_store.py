"""The outbox's verbs: fan events out to deliveries, claim deliveries under a lease, settle them, count, prune.

Several instances may share one PostgreSQL: fanning out is serialized by an advisory lock, and claims take rows
`FOR UPDATE SKIP LOCKED` then stamp them with a lease (`claimed_by`, `claimed_until`), so no two senders take the
same delivery. On SQLite (one process) a claim is the same update, serialized by SQLite itself. A sender that dies
before settling leaves its claim to expire: the delivery goes out again (at least once, same Message-ID/webhook-id).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import JSON, Connection, and_, bindparam, cast, delete, func, insert, literal, or_, select, text, update

from monitor.config import ChatChannel, Settings
from monitor.models import State
from monitor.notify.events import Event
from monitor.notify.scopes import Told, affected_lines, line_news, matching_scopes
from monitor.store import tables
from monitor.store.store import Clock, Store, utcnow
from monitor.store.tables import UTCDateTime

__all__ = ["CHANNELS", "Channel", "Claimed", "DeadLetter", "Outbox", "QueueFigures"]

Channel = Literal["email", "webhook", "chat"]
CHANNELS: tuple[Channel, ...] = ("email", "webhook", "chat")
FANOUT_LOCK = 0x7470_6D6F_6E_01  # PostgreSQL advisory lock: one instance fans out at a time
MAX_BACKOFF = 3600.0

_D = tables.notification_delivery
_E = tables.notification_event


@dataclass(frozen=True)
class Claimed:
    """One message to send: to one subscriber, webhook or chat channel, with the events it tells (oldest first).

    `key` names the message (Message-ID, webhook-id): the same deliveries claimed again give the same key.
    """

    channel: Channel
    key: str
    kind: str  # event or confirm
    deliveries: tuple[int, ...]
    attempts: int
    events: tuple[Event, ...] = ()
    subscriber: int | None = None
    address: str = ""
    webhook: int | None = None
    chat: str = ""
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QueueFigures:
    """By channel: deliveries waiting, the age of the oldest, dead letters; and events not yet fanned out."""

    pending: dict[str, int]
    oldest_seconds: dict[str, float]
    failed: dict[str, int]


@dataclass(frozen=True)
class DeadLetter:
    id: int
    channel: str
    target: str
    event_id: int | None
    attempts: int
    last_error: str
    created_at: datetime


def _event(row: Any) -> Event:
    return Event(row.id, row.kind, row.at, tuple(row.components), dict(row.payload))


class Outbox:
    """The outbox in the store; every verb is one short transaction."""

    def __init__(self, store: Store, *, clock: Clock = utcnow) -> None:
        self.store = store
        self._clock = clock

    # --- fanning out -------------------------------------------------------------------------------------------
    def fan_out(self, settings: Settings, *, limit: int = 200) -> int:
        """Turn up to `limit` new events into deliveries (or into nothing, when nobody is to be told);
        returns how many events were handled."""
        notifications = settings.notifications
        now = self._clock()
        with self.store._session("fan notifications out in", write=True) as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": FANOUT_LOCK})
            query = select(_E).where(_E.c.dispatched_at.is_(None)).order_by(_E.c.id).limit(limit)
            rows = list(connection.execute(query))
            events = [_event(row) for row in rows]
            written = {row.id: row.created_at for row in rows}
            if not events:
                return 0
            memory = _memory(connection, [e.payload.get("line", "") for e in events if e.kind == "line"])
            webhooks = list(connection.execute(select(tables.webhook).where(tables.webhook.c.enabled)))
            for event in events:
                values: dict[str, Any] = {"dispatched_at": now}
                lines: set[str] = set()
                if event.kind == "line":
                    line = str(event.payload.get("line", ""))
                    news = line_news(event.payload, memory.get(line))
                    if news is not None:
                        memory[line] = Told(news.state, news.progress)
                        _remember(connection, line, memory[line], event.at)
                        lines = {line} if line.partition("/")[0] in settings.networks else set()
                        values["payload"] = {**event.payload, "told_previous": news.previous.value}
                else:
                    lines = affected_lines(event, settings)
                if lines and notifications is not None:
                    due = now + timedelta(seconds=notifications.coalesce)
                    scopes = sorted(matching_scopes(lines))
                    if notifications.subscriptions:
                        _email_deliveries(connection, event.id, written[event.id], scopes, due, now)
                    _webhook_deliveries(connection, event.id, scopes, webhooks, now)
                    _chat_deliveries(connection, event.id, scopes, notifications.chat, due, now)
                connection.execute(update(_E).where(_E.c.id == event.id).values(values))
            return len(events)

    # --- claiming and settling ---------------------------------------------------------------------------------
    def claim(self, channel: Channel, owner: str, lease: float, *, groups: int = 100) -> list[Claimed]:
        """Take due deliveries of `channel` for up to `groups` targets, with every pending delivery of the same
        target (coalesced: one message each); stamped with `owner`'s lease of `lease` seconds."""
        now = self._clock()
        group = {"email": _D.c.subscriber_id, "webhook": _D.c.id, "chat": _D.c.chat}[channel]
        free = or_(_D.c.claimed_until.is_(None), _D.c.claimed_until < now)
        ready = and_(_D.c.channel == channel, _D.c.state == "pending", _D.c.next_at <= now, free)
        with self.store._session("claim notifications in", write=True) as connection:
            locking = connection.dialect.name == "postgresql"
            # Due rows not locked by another claimer (SKIP LOCKED), oldest first: their targets are this claim's.
            due = select(group).where(ready, _D.c.due_at <= now).order_by(_D.c.id).limit(groups * 4)
            if locking:
                due = due.with_for_update(skip_locked=True)
            targets = list(dict.fromkeys(connection.execute(due).scalars()))[:groups]
            if not targets:
                return []
            take = select(_D.c.id).where(ready, group.in_(targets)).order_by(_D.c.id)
            if locking:
                take = take.with_for_update(skip_locked=True)
            ids = list(connection.execute(take).scalars())
            if not ids:
                return []
            until = now + timedelta(seconds=lease)
            # `ready` again: without row locks (SQLite), another claimer may have taken some since the select
            connection.execute(update(_D).where(_D.c.id.in_(ids), ready).values(claimed_by=owner, claimed_until=until))
            mine = select(_D.c.id).where(_D.c.id.in_(ids), _D.c.claimed_by == owner, _D.c.claimed_until > now)
            ids = list(connection.execute(mine).scalars())
            return _messages(connection, channel, ids) if ids else []

    def sent(self, deliveries: Iterable[int]) -> None:
        ids = list(deliveries)
        if not ids:
            return
        values = {"state": "sent", "sent_at": self._clock(), "claimed_until": None, "last_error": ""}
        with self.store._session("record notifications sent in", write=True) as connection:
            connection.execute(update(_D).where(_D.c.id.in_(ids), _D.c.state == "pending").values(values))

    def failed(
        self, deliveries: Iterable[int], error: str, *, retry_after: float, max_attempts: int, final: bool = False
    ) -> int:
        """Count a failed attempt: retry later with exponential backoff, or (at `max_attempts`, or `final`) make
        them dead letters. Returns how many became dead letters."""
        ids = list(deliveries)
        if not ids:
            return 0
        now, dead = self._clock(), 0
        with self.store._session("record failed notifications in", write=True) as connection:
            rows = connection.execute(select(_D.c.id, _D.c.attempts).where(_D.c.id.in_(ids), _D.c.state == "pending"))
            for delivery, attempts in list(rows):
                tries = attempts + 1
                values: dict[str, Any] = {"attempts": tries, "claimed_until": None, "last_error": error[:500]}
                if final or tries >= max_attempts:
                    values["state"] = "failed"
                    dead += 1
                else:
                    values["next_at"] = now + timedelta(seconds=min(retry_after * 2 ** (tries - 1), MAX_BACKOFF))
                connection.execute(update(_D).where(_D.c.id == delivery).values(values))
        return dead

    def release(self, deliveries: Iterable[int]) -> None:
        """Give claimed deliveries back untouched (a sender stopping before it tried them)."""
        ids = list(deliveries)
        if ids:
            with self.store._session("release notifications in", write=True) as connection:
                connection.execute(update(_D).where(_D.c.id.in_(ids)).values(claimed_until=None))

    # --- what ops see --------------------------------------------------------------------------------------------
    def figures(self) -> QueueFigures:
        now = self._clock()
        pending: dict[str, int] = dict.fromkeys((*CHANNELS, "outbox"), 0)
        oldest: dict[str, float] = dict.fromkeys((*CHANNELS, "outbox"), 0.0)
        failed: dict[str, int] = dict.fromkeys(CHANNELS, 0)
        with self.store._session("count notifications in") as connection:
            query = select(_D.c.channel, _D.c.state, func.count(), func.min(_D.c.created_at)).group_by(
                _D.c.channel, _D.c.state
            )
            for channel, state, count, first in connection.execute(query):
                if state == "pending":
                    pending[channel] = count
                    oldest[channel] = _age(now, first)
                elif state == "failed":
                    failed[channel] = count
            query = select(func.count(), func.min(_E.c.created_at)).where(_E.c.dispatched_at.is_(None))
            count, first = connection.execute(query).one()
            pending["outbox"], oldest["outbox"] = count, _age(now, first)
        return QueueFigures(pending, oldest, failed)

    def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        query = select(_D).where(_D.c.state == "failed").order_by(_D.c.id.desc()).limit(limit)
        with self.store._session("read from") as connection:
            return [
                DeadLetter(
                    row.id,
                    row.channel,
                    _target(row),
                    row.event_id,
                    row.attempts,
                    row.last_error,
                    row.created_at,
                )
                for row in connection.execute(query)
            ]

    def pending(self, *, limit: int = 100) -> list[DeadLetter]:
        query = select(_D).where(_D.c.state == "pending").order_by(_D.c.id).limit(limit)
        with self.store._session("read from") as connection:
            return [
                DeadLetter(
                    row.id, row.channel, _target(row), row.event_id, row.attempts, row.last_error, row.created_at
                )
                for row in connection.execute(query)
            ]

    def retry(self, deliveries: Sequence[int] = ()) -> int:
        """Dead letters (those listed, or all) back to pending, due now; returns how many."""
        now = self._clock()
        where = [_D.c.state == "failed"]
        if deliveries:
            where.append(_D.c.id.in_(list(deliveries)))
        values = {"state": "pending", "attempts": 0, "next_at": now, "due_at": now, "claimed_until": None}
        with self.store._session("retry notifications in", write=True) as connection:
            return int(connection.execute(update(_D).where(*where).values(values)).rowcount)

    def prune(self, older_than: timedelta) -> int:
        """Delete deliveries settled and events fanned out longer than `older_than` ago; returns rows deleted."""
        cutoff = self._clock() - older_than
        with self.store._session("prune notifications in", write=True) as connection:
            settled = and_(_D.c.state.in_(("sent", "failed")), _D.c.created_at < cutoff)
            count = int(connection.execute(delete(_D).where(settled)).rowcount)
            still = select(_D.c.event_id).where(_D.c.event_id.is_not(None), _D.c.state == "pending")
            old = and_(_E.c.dispatched_at < cutoff, _E.c.id.not_in(still))
            count += int(connection.execute(delete(_E).where(old)).rowcount)
            return count


def _age(now: datetime, first: datetime | None) -> float:
    if first is None:
        return 0.0
    if isinstance(first, str):  # SQLite may hand an aggregate back as text
        first = datetime.fromisoformat(first)
    first = first if first.tzinfo is not None else first.replace(tzinfo=UTC)
    return max(0.0, (now - first).total_seconds())


def _target(row: Any) -> str:
    if row.channel == "email":
        return f"subscriber {row.subscriber_id}"
    if row.channel == "webhook":
        return f"webhook {row.webhook_id}"
    return f"chat {row.chat}"


def _memory(connection: Connection, lines: list[str]) -> dict[str, Told]:
    table = tables.notification_line_memory
    keys = sorted({line for line in lines if line})
    if not keys:
        return {}
    rows = connection.execute(select(table).where(table.c.line_key.in_(keys)))
    return {row.line_key: Told(State(row.state), row.progress) for row in rows}


def _remember(connection: Connection, line: str, told: Told, at: datetime) -> None:
    table = tables.notification_line_memory
    values = {"state": told.state.value, "progress": told.progress, "at": at}
    if connection.execute(update(table).where(table.c.line_key == line).values(values)).rowcount == 0:
        connection.execute(insert(table).values(line_key=line, **values))


def _new_delivery(event_id: int, channel: str, due: datetime, now: datetime) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "channel": channel,
        "kind": "event",
        "payload": {},
        "state": "pending",
        "attempts": 0,
        "due_at": due,
        "next_at": due,
        "last_error": "",
        "created_at": now,
    }


def _email_deliveries(
    connection: Connection, event_id: int, written: datetime, scopes: list[str], due: datetime, now: datetime
) -> None:
    """One delivery per subscriber following any of `scopes`, confirmed when the event was written (nobody gets
    the backlog of before their subscription): one INSERT … SELECT, whatever their number."""
    subscriber, subscription = tables.subscriber, tables.subscription
    follows = select(subscription.c.subscriber_id).where(subscription.c.scope.in_(scopes))
    chosen = select(
        literal(event_id, _D.c.event_id.type),
        literal("email"),
        literal("event"),
        subscriber.c.id,
        cast(literal("{}"), JSON) if connection.dialect.name == "postgresql" else literal("{}"),  # SQLite: no CAST
        literal("pending"),
        literal(0),
        literal(due, UTCDateTime()),
        literal(due, UTCDateTime()),
        literal(""),
        literal(now, UTCDateTime()),
    ).where(subscriber.c.confirmed_at <= written, subscriber.c.id.in_(follows))
    columns = [
        "event_id",
        "channel",
        "kind",
        "subscriber_id",
        "payload",
        "state",
        "attempts",
        "due_at",
        "next_at",
        "last_error",
        "created_at",
    ]
    connection.execute(insert(_D).from_select(columns, chosen))


def _webhook_deliveries(
    connection: Connection, event_id: int, scopes: list[str], webhooks: list[Any], now: datetime
) -> None:
    """Webhooks are told each event at once: machines coalesce themselves if they wish."""
    chosen = [row for row in webhooks if set(row.scopes) & set(scopes)]
    if chosen:
        rows = [_new_delivery(event_id, "webhook", now, now) | {"webhook_id": row.id} for row in chosen]
        connection.execute(insert(_D), rows)


def _chat_deliveries(
    connection: Connection,
    event_id: int,
    scopes: list[str],
    channels: Sequence[ChatChannel],
    due: datetime,
    now: datetime,
) -> None:
    chosen = [channel for channel in channels if set(channel.scopes) & set(scopes)]
    if chosen:
        rows = [_new_delivery(event_id, "chat", due, now) | {"chat": channel.name} for channel in chosen]
        connection.execute(insert(_D), rows)


def _messages(connection: Connection, channel: Channel, ids: list[int]) -> list[Claimed]:
    """The claimed deliveries as messages: one per target and kind; a confirmation is a message of its own."""
    query = select(_D).where(_D.c.id.in_(ids)).order_by(_D.c.id)
    rows = list(connection.execute(query))
    event_ids = sorted({row.event_id for row in rows if row.event_id is not None})
    events = {row.id: _event(row) for row in connection.execute(select(_E).where(_E.c.id.in_(event_ids)))}
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for row in rows:
        target = row.subscriber_id if channel == "email" else row.webhook_id if channel == "webhook" else row.chat
        single = row.kind == "confirm" or channel == "webhook"
        groups.setdefault((target, row.kind, row.message_key, row.id if single else 0), []).append(row)
    addresses: dict[int, str] = {}
    if channel == "email":
        subscriber = tables.subscriber
        wanted = sorted({row.subscriber_id for row in rows})
        query = select(subscriber.c.id, subscriber.c.address).where(subscriber.c.id.in_(wanted))
        addresses = {row.id: row.address for row in connection.execute(query)}
    claimed: list[Claimed] = []
    keys: list[dict[str, Any]] = []  # the new messages' keys, written in one executemany
    for (target, kind, key, _), members in groups.items():
        message_key = key or f"{channel}-{members[0].id}"
        if key is None:
            keys += [{"delivery": m.id, "key": message_key} for m in members]
        claimed.append(
            Claimed(
                channel,
                message_key,
                kind,
                tuple(m.id for m in members),
                max(m.attempts for m in members),
                tuple(events[m.event_id] for m in members if m.event_id in events),
                subscriber=target if channel == "email" else None,
                address=addresses.get(target, "") if channel == "email" else "",
                webhook=target if channel == "webhook" else None,
                chat=target if channel == "chat" else "",
                payload=dict(members[0].payload),
            )
        )
    if keys:
        named = update(_D).where(_D.c.id == bindparam("delivery")).values(message_key=bindparam("key"))
        connection.execute(named, keys)
    return claimed
