"""Run one check once, outside the scheduler (`tpmon probe`)."""

from __future__ import annotations

import os

from ..config import Check, Settings
from ..errors import MonitorError
from ..models import ProbeResult
from . import PROBES
from .clients import HttpClients
from .context import ProbeContext


async def probe_once(network: str, check: Check, settings: Settings) -> ProbeResult:
    """Probe `check` of `network` now with a client of its own; the result is not recorded."""
    if check.kind not in PROBES:  # a push check: its partner reports, nobody probes it
        raise MonitorError(f"{network}/{check.flow}/{check.name} is a push check: `tpmon push` feeds it, not probes")
    async with HttpClients() as clients:
        ctx = ProbeContext(network, clients.get(), settings.user_agent, os.environ, clients=clients)
        return await PROBES[check.kind](check, ctx)
