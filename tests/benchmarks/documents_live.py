"""What one request for a JSON or SVG document costs the live server, in-process: CPU milliseconds per GET of each
document, the board unchanged between requests (so /api/v1's documents, which the page cache does not keep, are
built each time, and the others are page-cache hits).

Not part of the test run. Usage:

    .venv/bin/python tests/benchmarks/documents_live.py [--networks 30] [--requests 40]

Builds the app of `tests/benchmarks/publish.py`'s config (`--networks` × 33 HTTP checks on a loopback target,
SQLite store, no scheduler), probes every check once, then GETs each document `--requests` times through the ASGI
app (identity encoding). Prints ONE JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from publish import config_yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared loopback target
from targets import Target

from monitor.app import Services, create_app
from monitor.config import load_config
from monitor.runner import run_check

PATHS = [
    "/api/v1/status",
    "/api/v1/checks",
    "/api/v1/networks/reseau-03",
    "/api/v1/networks/reseau-03/lines/optique",
    "/api/v2/summary.json",
    "/api/v2/components.json",
    "/badge/reseau-03/optique.svg",
]


async def measure(args: argparse.Namespace, root: Path, target: Target) -> dict[str, Any]:
    config = root / "tpmon.yaml"
    config.write_text(config_yaml(target.url(""), root / "site", args.networks, 30), encoding="utf-8")
    app = create_app(load_config(config), database_url=f"sqlite:///{root}/tpmon.db", schedule=False)
    async with app.router.lifespan_context(app) as state:
        assert state is not None
        services: Services = state["services"]
        for name, network in services.settings.networks.items():
            for check in network.checks:
                await run_check(name, check, services.pipeline)

        async def served(scope: Any, receive: Any, send: Any) -> None:
            await app({**scope, "state": dict(state)}, receive, send)

        found: dict[str, float] = {}
        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            for path in PATHS:
                for _ in range(3):  # warm: the first build of each, the pieces kept
                    await client.get(path)
                started = time.process_time()
                for _ in range(args.requests):
                    response = await client.get(path, headers={"accept-encoding": "identity"})
                    assert response.status_code == 200, path
                found[path] = round((time.process_time() - started) / args.requests * 1000, 2)
    return {"checks": args.networks * 33, "cpu_ms_per_request": found}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--networks", type=int, default=30, help="networks of 33 checks (default 30: 990 checks)")
    parser.add_argument("--requests", type=int, default=40, help="GETs of each document measured")
    args = parser.parse_args()
    load = round(os.getloadavg()[0], 2)
    target = Target()
    try:
        with tempfile.TemporaryDirectory(prefix="tpmon-documents-live-") as folder:
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
