"""Opening and migrating databases: idempotent upgrades matching the tables, one-line errors, default URL."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from monitor.errors import StoreError
from monitor.store import Store, default_url, migrate
from monitor.store.database import upgrade
from monitor.store.tables import metadata

HEAD = sorted(
    p.name.split("_")[0] for p in (Path(__file__).parents[2] / "monitor/store/migrations/versions").glob("0*.py")
)[-1]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_migrate_is_idempotent_and_matches_the_tables(database_url: str) -> None:
    migrate(database_url)
    migrate(database_url)
    with Store.open(database_url) as store:
        upgrade(store.engine)  # once more on the very connection pool (an in-memory SQLite is per engine)
        with store.engine.connect() as connection:
            assert connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [HEAD]
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []


def test_open_without_migrating_does_not_create_tables(database_url: str) -> None:
    with Store.open(database_url, migrate=False) as store, store.engine.connect() as connection:
        assert connection.dialect.has_table(connection, "probe_result") is False


def test_open_unreachable_postgres_says_so_in_one_masked_line() -> None:
    url = f"postgresql+psycopg://tpmon:s3cr3t-pw@127.0.0.1:{closed_port()}/tpmon"
    with pytest.raises(StoreError) as raised:
        Store.open(url)
    message = str(raised.value)
    assert "\n" not in message
    assert "s3cr3t-pw" not in message
    assert "tpmon:***@127.0.0.1:" in message
    assert "refused" in message.lower()


def test_migrate_unreachable_postgres_raises_store_error() -> None:
    with pytest.raises(StoreError, match=r"tpmon:\*\*\*@"):
        migrate(f"postgresql+psycopg://tpmon:s3cr3t-pw@127.0.0.1:{closed_port()}/tpmon")


@pytest.mark.parametrize("url", ["nope://x", "sqlite:////nonexistent-dir/x/tpmon.db", "not a url"])
def test_open_invalid_url_raises_one_line(url: str) -> None:
    with pytest.raises(StoreError) as raised:
        Store.open(url)
    assert "\n" not in str(raised.value)


def test_default_url_from_environment_or_var_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TPMON_DATABASE_URL", "postgresql+psycopg://db/tpmon")
    assert default_url() == "postgresql+psycopg://db/tpmon"
    assert not (tmp_path / "var").exists()
    monkeypatch.delenv("TPMON_DATABASE_URL")
    assert default_url() == "sqlite:///./var/tpmon.db"
    assert (tmp_path / "var").is_dir()
    with Store.open(default_url()) as store:
        store.ping()
    assert (tmp_path / "var" / "tpmon.db").is_file()


def test_head_is_alembics_head() -> None:
    from alembic.script import ScriptDirectory

    from monitor.store.database import HEAD as CODE_HEAD
    from monitor.store.database import MIGRATIONS

    assert CODE_HEAD == HEAD == ScriptDirectory(str(MIGRATIONS)).get_current_head()


_OPEN_AND_TELL = """
import sys
from monitor.store import Store
Store.open(sys.argv[1]).close()
print(sorted({name.split(".")[0] for name in sys.modules if name.split(".")[0] in ("alembic", "mako")}))
"""


def test_only_a_process_that_migrates_imports_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tpmon.db'}"

    def opened() -> str:
        command = [sys.executable, "-c", _OPEN_AND_TELL, url]
        done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert opened() == "['alembic', 'mako']"  # a new database: migrated
    assert opened() == "[]"  # at the head already: Alembic is not even imported
    with Store.open(url, migrate=False) as store, store.engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [HEAD]


def test_a_database_migrated_by_a_newer_tpmon_is_refused_in_one_line(durable_database_url: str, tmp_path: Path) -> None:
    migrate(durable_database_url)
    with Store.open(durable_database_url, migrate=False) as store, store.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0999'"))  # a revision we do not have
    with pytest.raises(StoreError) as refused:
        Store.open(durable_database_url)
    said = str(refused.value)
    assert "0999" in said and HEAD in said and "newer" in said and "\n" not in said
    environment = {"TPMON_DATABASE_URL": durable_database_url, "TPMON_LANG": "fr", "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "monitor", "db", "upgrade"]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120, env=environment)
    assert done.returncode != 0 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "0999" in done.stderr, done.stderr
    assert "plus récent" in done.stderr and "interne" not in done.stderr and "Traceback" not in done.stderr
    with Store.open(durable_database_url, migrate=False) as store, store.engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == ["0999"]
