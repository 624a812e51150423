"""Smoke test of the probe-engine benchmark: the farm counts exactly what it receives, tpmon's probes included.

Not collected by the test suite (its name is not test_*.py); run it by its path (≈ 15 s, needs nginx):

    .venv/bin/pytest tests/benchmarks/smoke_farm.py
"""

from __future__ import annotations

import shutil
import ssl
from pathlib import Path

import httpx
import pytest
from farm import farm
from probe_engine import judge, run_tpmon
from workload import plan

pytestmark = pytest.mark.skipif(
    shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(),
    reason="needs nginx: apt-get install -y --no-install-recommends nginx-light",
)


def test_the_farm_counts_each_request_once_and_logs_it(tmp_path: Path) -> None:
    targets = plan(30, 3)
    with farm(tmp_path / "farm") as f:
        start = f.mark()
        with (
            httpx.Client(trust_env=False) as plain,
            httpx.Client(verify=ssl.create_default_context(cafile=f.ca_file), trust_env=False) as tls,
        ):
            answers = [plain.get(f.base(False) + t.path) for t in targets]
            answers += [tls.get(f.base(True) + t.path) for t in targets[:10]]
        end = f.mark()
        got = f.arrivals(start, end)
    assert [a.status_code for a in answers] == [200] * 40
    portal, pec = answers[0], answers[2]  # the conditions of both contenders hold
    assert "Connexion" in portal.text
    assert pec.headers["content-type"] == "application/json"
    assert pec.json()["status"] == "UP"
    assert got.stub == 40  # our two status reads are not probes
    assert len(got.times) == 40
    assert got.uris == {t.path for t in targets}
    assert got.statuses == {"200": 40}


def test_tpmon_probes_are_counted_at_the_target(tmp_path: Path) -> None:
    targets = plan(20, 2)
    with farm(tmp_path / "farm") as f:
        result = run_tpmon(f, targets, interval=1.0, https=False, window=5.0, scrape_every=5.0, root=tmp_path / "t")
    seen_by_tpmon = result["probes_by_tpmon"]
    verdict = judge(result, len(targets), 1.0, https=False)
    assert verdict["settled"]
    assert verdict["checks_probed_share"] == 1.0
    assert verdict["target_requests"] == verdict["target_logged"]
    assert abs(verdict["target_requests"] - 100) <= 8  # 20 checks × 5 s / 1 s, give or take the window's edges
    assert abs(verdict["target_requests"] - seen_by_tpmon) <= 8  # tpmon's counter reads at slightly other instants
    assert verdict["success_ratio"] == 1.0
