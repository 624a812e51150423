"""`--location`: the instances of one location share its checks; each location probes every check."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from targets import Server, wait_for

from .farm_support import Farm, Instance, fleet_config, missed_runs, query

CHECKS = 8
INTERVAL = 2.0


@pytest.fixture
def farm() -> Iterator[Farm]:
    server = Farm()
    yield server
    server.close()


def test_a_bad_location_is_one_line(tmp_path: Path) -> None:
    done = Server(tmp_path / "none.yaml", tmp_path, {}).run("serve", "--location", "Lyon Part-Dieu")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "tpmon serve: argument --location: 'Lyon Part-Dieu' is not a location name "
        "(lowercase letters, digits, - and _) (see --help)"
    ]
    assert "Traceback" not in done.stderr


@pytest.mark.postgres
def test_two_locations_each_probe_every_check_once_per_interval(
    tmp_path: Path, farm: Farm, fresh_postgres_url: str
) -> None:
    url = fresh_postgres_url
    config = tmp_path / "tpmon.yaml"
    config.write_text(fleet_config(farm, CHECKS, interval="2s", heartbeat="1s"), encoding="utf-8")
    servers: list[Instance] = []
    try:
        for location in ("paris", "lyon"):
            (tmp_path / location).mkdir()
            servers.append(Instance(config, tmp_path / location, {"TPMON_DATABASE_URL": url}))
            servers[-1].start("--location", location)
        rows = query(url, "SELECT location FROM instance ORDER BY location")
        assert [row.location for row in rows] == ["lyon", "paris"]
        start = time.time() + 3.0  # both started: each alone in its location owns every check at once
        end = start + 10 * INTERVAL
        wait_for(lambda: time.time() > start, timeout=30, what="the window to start")
        missed_before = sum(missed_runs(server) for server in servers)
        wait_for(lambda: time.time() > end + 1.0, timeout=60, what="the window to pass")
        missed = sum(missed_runs(server) for server in servers) - missed_before
        counts = [len(farm.between(f"/c{i:02d}", start, end)) for i in range(CHECKS)]
        assert sum(counts) <= 1.01 * CHECKS * 20, counts  # 10 slots, two locations: never more
        assert sum(counts) + missed >= 0.99 * CHECKS * 20, (counts, missed)  # fewer only as the schedulers say
        assert all(count >= 10 for count in counts), counts  # both locations probe every check
    finally:
        for server in servers:
            server.stop()
    assert query(url, "SELECT id FROM instance") == []  # each left on its way out
