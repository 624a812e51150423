"""run_check: probe → advance → record → board → metrics, the whole pipeline in one short function."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from .board import Board, BoardChange
from .config import Check
from .metrics import Metrics
from .models import ProbeResult, Transition
from .probes import ProbeContext, probe_check
from .scheduler import probed
from .store import StoreWriter

__all__ = ["Pipeline", "run_check"]

log = logging.getLogger("tpmon.runner")


@dataclass
class Pipeline:
    """What run_check hands results to; built in the app lifespan."""

    board: Board
    writer: StoreWriter
    metrics: Metrics
    context: Callable[[str], ProbeContext]
    clock: Callable[[], datetime]
    listeners: list[Callable[[BoardChange], None]] = field(default_factory=list)
    # Several instances (monitor/cluster): whether this one writes a component's changes (one writer per fact), and
    # what to do with a result before it is recorded (a check just taken over: its memory as last stored).
    writes: Callable[[str], bool] | None = None
    before_record: Callable[[str], Awaitable[None]] | None = None
    # and what becomes of a transition it does not write (a derived one while it does not lead: `cluster.lead_gap`)
    unwritten: Callable[[Transition], None] | None = None

    def record(self, change: BoardChange) -> None:
        """Queue a board change for the store (never waits for it) and tell the listeners."""
        writes = self.writes or _everything
        for transition in change.transitions:
            if writes(transition.ref.key):
                self.writer.add_transition(transition)
                log.info(
                    "%s %s → %s (%s)", transition.ref.key, transition.previous, transition.state, transition.source
                )
            elif self.unwritten is not None:
                self.unwritten(transition)
        for status in change.statuses:
            if writes(status.ref.key):
                self.writer.set_status(status)
        for key, memory in change.memories.items():
            if writes(key):
                self.writer.set_memory(key, memory)
        for listener in self.listeners:
            listener(change)

    def take(self, result: ProbeResult) -> None:
        """A probe's result (probed here or by a probe worker) into the store, the board and the metrics."""
        self.writer.add_result(result)
        self.record(self.board.record(result, self.clock()))
        self.metrics.observe(result)


def _everything(key: str) -> bool:
    return True


async def run_check(network: str, check: Check, pipeline: Pipeline) -> ProbeResult:
    """Probe one check once and push the result through the status engine, the store and the metrics."""
    result = await probe_check(check, pipeline.context(network))
    probed()  # the scheduler's concurrency bound is for probes: what follows may wait on the store
    if pipeline.before_record is not None:
        await pipeline.before_record(result.check.key)
    pipeline.take(result)
    return result
