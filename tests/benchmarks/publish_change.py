"""What one change costs the publisher, in-process: CPU seconds to publish a network going down (then back), and
where they go (per kind of unit, per route pattern, and with `--profile`, cProfile's top functions).

Not part of the test run. Usage:

    .venv/bin/python tests/benchmarks/publish_change.py [--networks 30] [--changes 3] [--profile]

Builds the app of `tests/benchmarks/publish.py`'s config (`--networks` × 33 HTTP checks on a loopback target,
SQLite store, no scheduler: every check is probed here), publishes the whole export, then `--changes` times takes
one network's target down, probes its checks, and times `Publisher.publish_changes` (CPU of this process, all
threads: the pages render on the page cache's threads), then the same for it coming back. The CPU is independent
of the machine's load to a first order; the wall time is not. Prints ONE JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import os
import pstats
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from publish import config_yaml, flip

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared loopback target
from targets import Target

from monitor.app import Services, create_app
from monitor.config import load_config
from monitor.runner import run_check
from monitor.web import publisher as publisher_module
from monitor.web.publisher import Publisher
from monitor.web.static_export import Unit, write_unit


def _group(unit: Unit) -> str:
    if unit.pattern == "/reseaux/{network}/{line}":
        return "line_pages"
    if unit.pattern == "/reseaux/{network}":
        return "network_page"
    if unit.pattern == "/":
        return "home_page"
    return "other_pages" if unit.kind == "page" else "files"


async def _probe_network(services: Services, network: str) -> None:
    for check in services.settings.networks[network].checks:
        await run_check(network, check, services.pipeline)


async def measure(args: argparse.Namespace, root: Path, target: Target) -> dict[str, Any]:
    config = root / "tpmon.yaml"
    config.write_text(config_yaml(target.url(""), root / "site", args.networks, 30), encoding="utf-8")
    app = create_app(load_config(config), database_url=f"sqlite:///{root}/tpmon.db", schedule=False)
    figures: dict[str, Any] = {"checks": args.networks * 33, "networks": args.networks}
    async with app.router.lifespan_context(app) as state:
        assert state is not None
        services: Services = state["services"]
        networks = list(services.settings.networks)
        for network in networks:
            await _probe_network(services, network)
        publisher = Publisher(  # as `tpmon serve` makes it: the store takes what the board saw before the pages
            services, app, state, root / "site", "https://etat.exemple.fr", store_seen=services.writer.flush
        )
        gc.freeze()  # as `tpmon serve` does once started (what startup built is not walked by each collection)
        started = time.process_time()
        first = await publisher.publish_all()
        figures["first_publication"] = {"files": first.written, "cpu_s": round(time.process_time() - started, 2)}
        while await publisher.publish_changes() is not None:  # every state known, the background done
            pass

        spent: dict[str, float] = defaultdict(float)
        counted: dict[str, int] = defaultdict(int)
        by_pattern: dict[str, float] = defaultdict(float)
        plain = write_unit

        async def timed(unit: Unit, *rest: Any) -> bool:
            before = time.process_time()
            try:
                return await plain(unit, *rest)
            finally:
                spent[_group(unit)] += time.process_time() - before
                counted[_group(unit)] += 1
                by_pattern[unit.pattern] += time.process_time() - before

        setattr(publisher_module, "write_unit", timed)  # noqa: B010 - the name the publisher calls
        profile = cProfile.Profile() if args.profile else None
        if profile is not None:  # cProfile sees one thread: the builds run on the event loop's, in turn

            async def inline(function: Any, *rest: Any, **named: Any) -> Any:
                return function(*rest, **named)

            services.pages.run = inline  # type: ignore[method-assign]
        changes: list[dict[str, Any]] = []
        try:
            for change in range(args.changes):
                network = networks[change % len(networks)]
                for down in (True, False):
                    flip(target, network, down)
                    await _probe_network(services, network)
                    before_cpu, before_wall = time.process_time(), time.perf_counter()
                    if profile is not None:
                        profile.enable()
                    report = await publisher.publish_changes()
                    while publisher._deferred or publisher._late:  # the change's every file
                        report = await publisher.publish_changes() or report
                    if profile is not None:
                        profile.disable()
                    changes.append(
                        {
                            "network": network,
                            "down": down,
                            "cpu_s": round(time.process_time() - before_cpu, 3),
                            "wall_s": round(time.perf_counter() - before_wall, 3),
                            "written": report.written if report else 0,
                        }
                    )
                    print(f"[publish_change] {changes[-1]}", file=sys.stderr, flush=True)
        finally:
            setattr(publisher_module, "write_unit", plain)  # noqa: B010
        cpu = sorted(found["cpu_s"] for found in changes)
        figures["per_change"] = {
            "changes": len(changes),
            "cpu_s_median": cpu[len(cpu) // 2],
            "cpu_s_max": cpu[-1],
            "wall_s_median": sorted(found["wall_s"] for found in changes)[len(changes) // 2],
            "all": changes,
        }
        figures["cpu_ms_per_change_by_unit"] = {
            name: {"units": counted[name] // len(changes), "ms": round(spent[name] / len(changes) * 1000, 1)}
            for name in sorted(spent, key=lambda n: -spent[n])
        }
        figures["cpu_ms_per_change_by_pattern"] = {
            pattern: round(spent_s / len(changes) * 1000, 1)
            for pattern, spent_s in sorted(by_pattern.items(), key=lambda found: -found[1])
        }
        if profile is not None:
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(90)
            print(out.getvalue(), file=sys.stderr)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--networks", type=int, default=30, help="networks of 33 checks (default 30: 990 checks)")
    parser.add_argument("--changes", type=int, default=3, help="networks taken down then up, one at a time")
    parser.add_argument("--profile", action="store_true", help="cProfile of the changes' publications, on stderr")
    args = parser.parse_args()
    load = round(os.getloadavg()[0], 2)
    target = Target()
    try:
        with tempfile.TemporaryDirectory(prefix="tpmon-publish-change-") as folder:
            figures = asyncio.run(measure(args, Path(folder), target))
    finally:
        target.close()
    figures["machine"] = {
        "cores": os.cpu_count(),
        "host_load_1m_before": load,
        "host_load_1m_after": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
