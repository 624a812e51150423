"""Run one check once, outside the scheduler (`tpmon probe`)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from ..config import Check, Settings
from ..config.values import ENV_REF, url_problem
from ..errors import MonitorError
from ..i18n import Text, said
from ..models import ProbeResult
from . import PROBES
from .clients import HttpClients
from .context import ProbeContext


def _unusable(check: Check, environ: Mapping[str, str]) -> Text | None:
    """Why an HTTP check's URL cannot be probed here (unset variable, no host, port outside 1–65535), never
    quoting the URL (it may hold a secret); None when it can."""
    if check.kind != "http":
        return None
    unset = [name for name in ENV_REF.findall(check.url) if name not in environ]
    if unset:
        return said("environment variable {name} is not set", name=unset[0])
    expanded = ENV_REF.sub(lambda match: environ[match.group(1)], check.url)
    if not expanded.startswith(("http://", "https://")):
        return said("is not an http:// or https:// URL")
    return url_problem(expanded)


async def probe_once(network: str, check: Check, settings: Settings) -> ProbeResult:
    """Probe `check` of `network` now with a client of its own; the result is not recorded.

    A check that cannot run as configured ends in one MonitorError naming it and why, never a crash.
    """
    target = f"{network}/{check.flow}/{check.name}"
    if check.kind not in PROBES:  # a push check: its partner reports, nobody probes it
        raise MonitorError(said("{target} is a push check: `tpmon push` feeds it, not probes", target=target))
    if problem := _unusable(check, os.environ):
        raise MonitorError(said("{target}: url: {problem}", target=target, problem=problem))
    async with HttpClients() as clients:
        ctx = ProbeContext(network, clients.get(), settings.user_agent, os.environ, clients=clients)
        try:
            return await PROBES[check.kind](check, ctx)
        except Exception as exc:  # a failing target is a result; this is the probe itself failing: one line
            failed = said("{target}: the probe could not run ({error})", target=target, error=type(exc).__name__)
            raise MonitorError(failed) from exc
