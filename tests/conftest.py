"""Shared fixtures: the database URLs the store suite runs against (SQLite memory and file, PostgreSQL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from components import missing_component
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from targets import Target

POSTGRES_ENV = "TPMON_TEST_POSTGRES_URL"

# The command line speaks French by default (monitor/opscli/texts.py); the suite reads its output in English, the
# language its expected files (tests/data/config/*.expected) and messages are written in, whatever the machine's
# locale: LANGUAGE, which the commands' environments keep (they drop TPMON_*). tests/test_cli_lang.py runs it
# without this, in French, and checks every text has both languages.
os.environ["LANGUAGE"] = "en"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test PostgreSQL (`.ci/postgres.sh` prints it); skipped locally without it, failed on CI."""
    url = os.environ.get(POSTGRES_ENV, "").strip()
    if not url:
        message = f"{POSTGRES_ENV} is not set: run `export {POSTGRES_ENV}=$(.ci/postgres.sh)`"
        missing_component(message)
    return url


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> Iterator[str]:
    """`postgres_url` on a new empty schema (its search_path), dropped after the test."""
    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(postgres_url, poolclass=NullPool)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text("SET LOCAL lock_timeout = '10s'"))
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _url_for(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "sqlite-memory":
        return "sqlite://"
    if backend == "sqlite-file":
        return f"sqlite:///{tmp_path / 'tpmon.db'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


_POSTGRES = pytest.param("postgres", marks=pytest.mark.postgres)


@pytest.fixture(params=["sqlite-memory", "sqlite-file", _POSTGRES])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each backend; an in-memory SQLite lives as long as its Store."""
    return _url_for(request.param, request, tmp_path)


@pytest.fixture(params=["sqlite-file", _POSTGRES])
def durable_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each backend that outlives its Store (for restart tests)."""
    return _url_for(request.param, request, tmp_path)


@pytest.fixture
def target() -> Iterator[Target]:
    """A real HTTP target on loopback whose answers the test changes (tests/targets.py)."""
    server = Target()
    yield server
    server.close()
