"""`tpmon serve` on SQLite when its disk fills up (a 2 MB tmpfs, as root) and when it is killed -9 in a loop: the
status it gives of its store stays true, nothing is lost nor written twice, and the file stays sound."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from components import missing_component
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
from targets import Server, Target, free_port, wait_for

from .store_fault_support import (
    CONFIG,
    assert_chains,
    assert_nothing_lost,
    flapping_target,
    kill,
    metric,
    start,
    stored_transitions,
    terminate,
    timed_get,
    wait_logged,
    wait_stored,
)


@pytest.fixture
def flapping() -> Iterator[Target]:
    target = flapping_target()
    yield target
    target.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs; skipped where it cannot be mounted (not root), except on CI."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        message = f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}"
        missing_component(message)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of `disk`."""
    filler = disk / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while os.write(descriptor, b"\0" * size):
                    pass
    finally:
        os.close(descriptor)
    descriptor = os.open(filler, os.O_WRONLY | os.O_APPEND)
    try:
        with pytest.raises(OSError) as full:
            os.write(descriptor, b"\0")
    finally:
        os.close(descriptor)
    assert full.value.errno == errno.ENOSPC
    return filler


def integrity(url: str) -> str:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return str(connection.execute(text("PRAGMA integrity_check")).scalar_one())
    finally:
        engine.dispose()


def serve(tmp_path: Path, target: Target, url: str, **env: str) -> Server:
    config = tmp_path / "tpmon.yaml"
    config.write_text(CONFIG.format(url=target.url("")), encoding="utf-8")
    return Server(config, tmp_path, {"TPMON_DATABASE_URL": url, **env})


def test_full_disk_is_reported_and_nothing_is_lost_once_space_returns(
    tmp_path: Path, flapping: Target, small_disk: Path
) -> None:
    """The journal is on the full disk too (its default place): what could not be written waits in memory."""
    url = f"sqlite:///{small_disk}/tpmon.db"
    server = serve(tmp_path, flapping, url)
    start(server)
    try:
        wait_stored(url, 4)
        filler = fill(small_disk)
        full = time.monotonic()
        wait_for(lambda: metric(server, "tpmon_store_up") == 0.0, timeout=12, what="tpmon_store_up 0")
        assert time.monotonic() - full <= 10.0
        ready, took = timed_get(server, "/readyz")
        # answered from memory, not after a store call: well under a write's 5 s deadline (1 s flaked at load 10+)
        assert ready.status_code == 503 and took < 2.5
        wait_for(lambda: (metric(server, "tpmon_store_journal_failures_total") or 0) > 0, what="journal refused")
        waiting = wait_for(lambda: metric(server, "tpmon_store_buffered_transitions"), what="transitions in memory")
        assert waiting > 0

        filler.unlink()
        wait_for(lambda: metric(server, "tpmon_store_up") == 1.0, timeout=15, what="tpmon_store_up 1 again")
        wait_for(lambda: metric(server, "tpmon_store_buffered_transitions") == 0.0, what="transitions written")
        assert server.get("/readyz").status_code == 200
    finally:
        code, _ = terminate(server, within=15.0)
    assert code == 0
    assert_nothing_lost(stored_transitions(url), server.log)
    assert integrity(url) == "ok"


def test_sigterm_on_a_full_disk_journals_elsewhere_and_the_next_start_writes_it(
    tmp_path: Path, flapping: Target, small_disk: Path
) -> None:
    url = f"sqlite:///{small_disk}/tpmon.db"
    journal = tmp_path / "journal" / "tpmon.jsonl"
    server = serve(tmp_path, flapping, url, TPMON_JOURNAL=str(journal))
    server.log = tmp_path / "serve-1.log"
    start(server)
    try:
        wait_stored(url, 4)
        filler = fill(small_disk)
        wait_for(lambda: metric(server, "tpmon_store_up") == 0.0, timeout=12, what="tpmon_store_up 0")
        wait_for(lambda: (metric(server, "tpmon_store_journal_bytes") or 0) > 0, what="journalled")
        wait_logged(server.log, len(stored_transitions(url)) + 4)  # more transitions than the disk took
        code, _ = terminate(server, within=15.0)
    finally:
        if server.proc is not None:
            kill(server)
    assert code == 0
    assert journal.stat().st_size > 0

    filler.unlink()
    server.log = tmp_path / "serve-2.log"
    start(server)
    try:
        wait_for(lambda: metric(server, "tpmon_store_replayed_total", '{kind="transition"}'), what="replayed")
        assert journal.stat().st_size == 0
    finally:
        code, _ = terminate(server, within=15.0)
    assert code == 0
    assert_nothing_lost(stored_transitions(url), tmp_path / "serve-1.log", server.log)
    assert integrity(url) == "ok"


def test_kill_9_loop_on_sqlite_keeps_one_chain_per_component_and_a_sound_file(tmp_path: Path, flapping: Target) -> None:
    url = f"sqlite:///{tmp_path}/tpmon.db"
    server = serve(tmp_path, flapping, url)
    stored = 0
    for run in range(5):
        server.log = tmp_path / f"serve-{run}.log"
        start(server)
        try:
            stored = len(wait_stored(url, stored + 3))
        finally:
            kill(server)
        assert integrity(url) == "ok"
    assert_chains(stored_transitions(url))


def test_a_second_server_on_the_same_journal_refuses_to_start_in_one_line(tmp_path: Path, flapping: Target) -> None:
    url = f"sqlite:///{tmp_path}/tpmon.db"
    server = serve(tmp_path, flapping, url)
    start(server)
    try:
        config, pid_file = str(server.config), str(tmp_path / "other.pid")
        ports = ("--port", str(free_port()), "--admin-port", str(free_port()))
        # another database (the same SQLite file is refused before, by its lock), the same journal
        other = Server(
            server.config,
            tmp_path,
            {
                "TPMON_DATABASE_URL": f"sqlite:///{tmp_path}/other.db",
                "TPMON_JOURNAL": f"{tmp_path}/tpmon.journal.jsonl",
            },
        )
        second = other.run("serve", "--config", config, *ports, "--pid-file", pid_file)
    finally:
        code, _ = terminate(server, within=15.0)
    assert code == 0
    assert second.returncode == 1
    assert second.stderr == (
        f"tpmon: the journal {tmp_path}/tpmon.journal.jsonl is in use by another tpmon; stop it or set TPMON_JOURNAL\n"
    )
    assert not (tmp_path / "other.pid").exists()
