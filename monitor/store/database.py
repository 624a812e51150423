"""Engines for SQLite and PostgreSQL, the default URL, Alembic upgrades and one-line error texts."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from monitor.errors import StoreError

__all__ = ["default_url", "describe", "is_memory", "make_engine", "mask", "migrate", "upgrade"]

ENV_VAR = "TPMON_DATABASE_URL"
DEFAULT_URL = "sqlite:///./var/tpmon.db"
MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_PRAGMAS = ("journal_mode=WAL", "foreign_keys=ON", "busy_timeout=5000", "synchronous=NORMAL")
# Any constant shared by every tpmon instance: serializes concurrent upgrades of one PostgreSQL.
PG_MIGRATION_LOCK = 0x7470_6D6F_6E


def default_url() -> str:
    """`$TPMON_DATABASE_URL`, else a SQLite file under `./var/` (the folder is created)."""
    url = os.environ.get(ENV_VAR, "").strip()
    if url:
        return url
    Path("var").mkdir(exist_ok=True)
    return DEFAULT_URL


def mask(url: str | URL) -> str:
    """The URL with its password hidden, safe to log or show."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid database URL>"


def describe(exc: BaseException, url: str | URL | None = None) -> str:
    """A short single-line text of a database error, without the URL's password."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    message = " ".join(lines[0].split()) if lines else type(cause).__name__
    if url is not None:
        password = _password(url)
        if password:
            message = message.replace(password, "***")
    return message[:300]


def _password(url: str | URL) -> str | None:
    try:
        return make_url(url).password
    except ArgumentError:
        return None


def is_memory(url: URL) -> bool:
    """True for an in-memory SQLite database (one connection shared by every thread)."""
    database = url.database or ""
    return url.get_backend_name() == "sqlite" and (database in ("", ":memory:") or url.query.get("mode") == "memory")


def make_engine(url: str | URL) -> Engine:
    """An engine for `url`: SQLite tuned (WAL…) via a connect event, PostgreSQL with a connect timeout."""
    parsed = make_url(url)
    options: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        options["connect_args"] = {"check_same_thread": False}
        if is_memory(parsed):
            options["poolclass"] = StaticPool
    elif parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        options["connect_args"] = {"connect_timeout": 5}
    engine = create_engine(parsed, **options)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _tune_sqlite)
    return engine


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(f"PRAGMA {pragma}")
    finally:
        cursor.close()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the Alembic migrations up to `revision` on `engine`, in one transaction, one process at a time: an
    advisory lock on PostgreSQL, a file lock beside a SQLite file (whose DDL pysqlite does not run in the
    transaction: two first starts would both create the tables)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    with _sqlite_migration_lock(engine.url), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


@contextlib.contextmanager
def _sqlite_migration_lock(url: URL) -> Iterator[None]:
    """Hold `<file>.migrate.lock` (flock, blocking) while a SQLite file is migrated; nothing for other databases."""
    if url.get_backend_name() != "sqlite" or is_memory(url) or (url.database or "").startswith("file:"):
        yield
        return
    path = Path(url.database or "").absolute()
    with open(path.with_name(path.name + ".migrate.lock"), "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        yield


def migrate(url: str) -> None:
    """`alembic upgrade head` on the database at `url`; StoreError (one line) if it fails."""
    try:
        engine = make_engine(url)
    except (ArgumentError, ImportError) as exc:
        raise StoreError(f"invalid database URL {mask(url)}: {describe(exc, url)}") from exc
    try:
        upgrade(engine)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot migrate the database {mask(url)}: {describe(exc, url)}") from exc
    finally:
        engine.dispose()
