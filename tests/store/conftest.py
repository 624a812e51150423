"""Store fixtures: an open Store on each backend and a cuttable proxy in front of PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy.engine import make_url

from monitor.store import Store

from .store_support import TcpProxy


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = Store.open(database_url)
    yield opened
    opened.close()


@pytest.fixture
async def pg_proxy(fresh_postgres_url: str) -> AsyncIterator[TcpProxy]:
    """A cuttable TCP proxy in front of the test PostgreSQL; its URL is `proxied_url(proxy, url)`."""
    url = make_url(fresh_postgres_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    yield proxy
    await proxy.close()
