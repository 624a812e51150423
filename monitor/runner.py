"""run_check: probe → advance → record → board → metrics, the whole pipeline in one short function."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from .board import Board, BoardChange
from .config import Check
from .metrics import Metrics
from .models import ProbeResult
from .probes import ProbeContext, probe_check
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

    def record(self, change: BoardChange) -> None:
        """Queue a board change for the store (never waits for it) and tell the listeners."""
        for transition in change.transitions:
            self.writer.add_transition(transition)
            log.info("%s %s → %s (%s)", transition.ref.key, transition.previous, transition.state, transition.source)
        for status in change.statuses:
            self.writer.set_status(status)
        for key, memory in change.memories.items():
            self.writer.set_memory(key, memory)
        for listener in self.listeners:
            listener(change)

    def take(self, result: ProbeResult) -> None:
        """A probe's result (probed here or by a probe worker) into the store, the board and the metrics."""
        self.writer.add_result(result)
        self.record(self.board.record(result, self.clock()))
        self.metrics.observe(result)


async def run_check(network: str, check: Check, pipeline: Pipeline) -> ProbeResult:
    """Probe one check once and push the result through the status engine, the store and the metrics."""
    result = await probe_check(check, pipeline.context(network))
    pipeline.take(result)
    return result
