"""SQLite stays single-instance, and migrations are safe against concurrent starts (real processes)."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
from targets import Server, Target, alpha_config, wait_for

from monitor.cluster.single_instance import lock_path, single_instance
from monitor.errors import MonitorError
from monitor.store.database import MIGRATIONS

STARTS = 4  # concurrent starts on one fresh database
HEAD = ScriptDirectory(str(MIGRATIONS)).get_current_head()


def _config(tmp_path: Path, target: Target) -> Path:
    config = tmp_path / "tpmon.yaml"
    config.write_text(alpha_config(target.url("")), encoding="utf-8")
    return config


def test_a_second_serve_on_one_sqlite_file_refuses_in_one_line(tmp_path: Path, target: Target) -> None:
    url = f"sqlite:///{tmp_path}/tpmon.db"
    first = Server(_config(tmp_path, target), tmp_path, {"TPMON_DATABASE_URL": url}).start()
    try:
        second = Server(first.config, tmp_path, {"TPMON_DATABASE_URL": url})
        done = subprocess.run(
            second.command("serve", "--config", str(first.config), "--port", str(second.port), "--no-admin"),
            cwd=tmp_path,
            env=second.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode != 0
        lines = done.stderr.strip().splitlines()
        pid = first.proc.pid if first.proc else 0
        assert lines == [
            f"tpmon: another tpmon serve already runs on {tmp_path / 'tpmon.db'} (pid {pid}): "
            "SQLite takes one instance; use PostgreSQL ($TPMON_DATABASE_URL) to run several"
        ]
        assert first.get("/healthz").status_code == 200  # the first one goes on
    finally:
        first.stop()


def test_the_lock_goes_with_a_killed_process(tmp_path: Path, target: Target) -> None:
    url = f"sqlite:///{tmp_path}/tpmon.db"
    first = Server(_config(tmp_path, target), tmp_path, {"TPMON_DATABASE_URL": url}).start()
    assert first.proc is not None
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(timeout=20)
    first.proc = None
    again = Server(first.config, tmp_path, {"TPMON_DATABASE_URL": url}).start()  # the stale lock file is no obstacle
    try:
        assert again.get("/healthz").status_code == 200
    finally:
        again.stop()


def test_the_lock_in_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/sub/tpmon.db"
    assert lock_path(url) == tmp_path / "sub" / "tpmon.db.lock"
    assert lock_path("sqlite://") is None
    assert lock_path("postgresql+psycopg://u@h/db") is None
    with single_instance(url) as held:
        assert held == tmp_path / "sub" / "tpmon.db.lock"
        assert held.read_text() == str(os.getpid())
        script = f"from monitor.cluster.single_instance import single_instance as s\nwith s({url!r}): pass"
        other = subprocess.run(  # another process: refused while held (flock locks are per open file)
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert other.returncode != 0 and "MonitorError: another tpmon serve already runs on" in other.stderr
    with single_instance(url):  # released: taken again
        pass
    with single_instance("sqlite://") as none:
        assert none is None


def test_a_lock_file_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "tpmon.db.lock").mkdir()
    refused = pytest.raises(MonitorError, match=r"^cannot open the lock file .*tpmon\.db\.lock: Is a directory$")
    with refused, single_instance(f"sqlite:///{tmp_path}/tpmon.db"):
        pass


def _concurrent_upgrades(tmp_path: Path, url: str) -> list[subprocess.CompletedProcess[str]]:
    env = {**os.environ, "TPMON_DATABASE_URL": url}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "monitor", "db", "upgrade"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(STARTS)
    ]
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def _head_of(url: str) -> list[str]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())
    finally:
        engine.dispose()


def test_concurrent_migrations_of_a_fresh_sqlite_file_all_succeed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/fresh.db"
    for run in _concurrent_upgrades(tmp_path, url):
        assert (run.returncode, run.stderr) == (0, ""), run.stderr
    assert _head_of(url) == [HEAD]


@pytest.mark.postgres
def test_concurrent_migrations_of_a_fresh_postgresql_all_succeed(tmp_path: Path, fresh_postgres_url: str) -> None:
    for run in _concurrent_upgrades(tmp_path, fresh_postgres_url):
        assert (run.returncode, run.stderr) == (0, ""), run.stderr
    assert _head_of(fresh_postgres_url) == [HEAD]


def test_concurrent_serves_on_a_fresh_sqlite_file_one_runs_the_others_refuse(tmp_path: Path, target: Target) -> None:
    url = f"sqlite:///{tmp_path}/tpmon.db"
    servers = [Server(_config(tmp_path, target), tmp_path / f"s{i}", {"TPMON_DATABASE_URL": url}) for i in range(3)]
    procs = []
    for srv in servers:
        srv.workdir.mkdir()
        procs.append(
            subprocess.Popen(
                srv.command("serve", "--config", str(srv.config), "--port", str(srv.port), "--no-admin"),
                cwd=srv.workdir,
                env=srv.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        for index, proc in enumerate(procs):  # each one ends or answers
            wait_for(functools.partial(_ended_or_answers, servers[index], proc), timeout=60, what=f"serve {index}")
        ended = [p for p in procs if p.poll() is not None]
        assert len(ended) == 2, [p.poll() for p in procs]
        for proc in ended:
            assert proc.returncode != 0
            assert proc.stderr is not None and "another tpmon serve already runs on" in proc.stderr.read()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
    assert _head_of(url) == [HEAD]


def _ended_or_answers(server: Server, proc: subprocess.Popen[str]) -> bool:
    if proc.poll() is not None:
        return True
    try:
        return server.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False
