"""What the app says of its store, and what it does without it: `store_up` and /readyz follow a hung PostgreSQL
from memory, at once; the periodic tick never waits on it (declarations, operators' tokens) and applies the
maintenance it already knows."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient
from targets import alpha_config
from tcp_proxy import TcpProxy, tcp_proxy

from monitor.app import Services, create_app
from monitor.config import load_config
from monitor.declared.inputs import Bilingual
from monitor.declared.maintenance import MaintenanceWindow
from monitor.i18n import PARIS
from monitor.models import State
from monitor.store import Store
from monitor.store.declaration_store import Declarations

from .store_support import sample_result

NOW = datetime(2024, 2, 12, 12, 0, tzinfo=UTC)
OPTIQUE = "line:alpha/optique"


@pytest.fixture
def proxy(fresh_postgres_url: str) -> Iterator[TcpProxy]:
    url = make_url(fresh_postgres_url)
    with tcp_proxy(url.host or "127.0.0.1", url.port or 5432) as running:
        yield running


@pytest.mark.postgres
def test_a_hung_store_is_said_at_once_and_the_tick_applies_known_maintenance(
    tmp_path: Path, proxy: TcpProxy, fresh_postgres_url: str
) -> None:
    config = tmp_path / "tpmon.yaml"
    config.write_text(alpha_config("http://127.0.0.1:9"), encoding="utf-8")
    settings = load_config(config)
    url = make_url(fresh_postgres_url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    store = Store.open(url, deadline=1.0)
    now = [NOW]
    app = create_app(settings, store=store, schedule=False, clock=lambda: now[0])
    try:
        with TestClient(app) as client:
            services: Services = client.app_state["services"]
            start = (NOW + timedelta(hours=1)).astimezone(PARIS).replace(tzinfo=None)  # a Paris wall time
            window = MaintenanceWindow(None, Bilingual("Travaux"), (OPTIQUE,), start, timedelta(hours=2))
            Declarations(store, settings, clock=lambda: NOW).add_window(window)
            client.portal.call(services.refresh_overrides)  # type: ignore[union-attr]
            assert services.store_up
            assert client.get("/readyz").json()["problems"] == ["scheduler not running"]  # no jobs in this test
            assert services.board.statuses()[OPTIQUE].state is not State.MAINTENANCE

            proxy.set_mode("hang")
            services.writer.add_result(sample_result(0))  # the next write finds the database hung
            deadline = time.monotonic() + 10
            while services.store_up:
                assert time.monotonic() < deadline, "store_up stayed true"
                time.sleep(0.05)
            began = time.monotonic()
            ready = client.get("/readyz")
            assert ready.status_code == 503 and time.monotonic() - began < 0.5
            assert ready.json()["problems"][0] == "database unreachable or not answering in time"

            now[0] = NOW + timedelta(hours=1, minutes=5)  # the window has begun; the store still hangs
            services.desk.monotonic = lambda: time.monotonic() + 3600  # the operators' tokens are due for a reload
            began = time.monotonic()
            client.portal.call(services.tick)
            assert time.monotonic() - began < 0.5  # no read of a store known down: declarations, tokens
            assert services.board.statuses()[OPTIQUE].state is State.MAINTENANCE

            proxy.set_mode("pass")
            deadline = time.monotonic() + 15
            while not services.store_up:
                assert time.monotonic() < deadline, "store_up never came back"
                time.sleep(0.05)
            assert client.get("/readyz").json()["problems"] == ["scheduler not running"]
    finally:
        store.close()
