"""One writer per fact: housekeeping and the notification cycle run on the leader only, and on the next leader
when it goes (two apps on one real PostgreSQL, in one process, each with its own engine)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from targets import Target, alpha_config

from monitor.app import Services, create_app, periodic_jobs
from monitor.config import load_config

pytestmark = pytest.mark.postgres


@pytest.fixture
def pair(tmp_path: Path, target: Target, fresh_postgres_url: str) -> Iterator[list[tuple[TestClient, Services]]]:
    config = tmp_path / "tpmon.yaml"
    config.write_text(alpha_config(target.url("")) + "cluster: {heartbeat: 60s}\n", encoding="utf-8")
    settings = load_config(config)
    with ExitStack() as stack:
        found = []
        for _ in range(2):
            client = stack.enter_context(TestClient(create_app(settings, database_url=fresh_postgres_url)))
            found.append((client, client.app_state["services"]))
        yield found


def _housekeep(client: TestClient, services: Services) -> int:
    """Run the housekeeping job once; the history version it bumps when it ran."""
    job = next(job for name, _, job in periodic_jobs(services, 5.0, 300.0) if name == "housekeeping")
    before = services.history_version
    client.portal.call(job)  # type: ignore[union-attr]
    return services.history_version - before


def test_housekeeping_and_notifications_run_on_the_leader_only_then_on_the_next(
    pair: list[tuple[TestClient, Services]],
) -> None:
    (first_client, first), (second_client, second) = pair
    assert first.cluster is not None and second.cluster is not None
    assert (first.cluster.leading, second.cluster.leading) == (True, False)  # the first to start leads
    assert first.notifier is not None and second.notifier is not None
    assert (first.notifier.may_run(), second.notifier.may_run()) == (True, False)
    assert (_housekeep(first_client, first), _housekeep(second_client, second)) == (1, 0)  # once, not twice
    for key in ("line:alpha/pharmacie", "network:alpha"):  # derived states: written by the leader only
        assert (first.cluster.writes(key), second.cluster.writes(key)) == (True, False)

    first_client.portal.call(first.cluster.stop)  # type: ignore[union-attr]  # the leader goes
    second_client.portal.call(second.cluster.beat)  # type: ignore[union-attr]  # the next heartbeat of the other
    assert second.cluster.leading and second.notifier.may_run()
    assert _housekeep(second_client, second) == 1  # never not at all
    assert second.cluster.writes("network:alpha")
    assert all(second.cluster.owns(f"check:alpha/{flow}") for flow in ("facturation/dre", "pec/pec"))
