"""`web.publish_dir`: a real `tpmon serve` publishes the site into a folder that Debian's nginx serves with
config/nginx-tpmon-published.conf (only its ports, certificate paths and root changed), while a reader hammers it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import sqlalchemy
import trustme
from targets import Server, Target, free_port, wait_for
from test_nginx import main_config, nginx_binary

from monitor.app import Services, create_app
from monitor.config import load_config
from monitor.i18n import STATE_ICONS, STATE_LABELS, Lang
from monitor.models import ComponentRef, State
from monitor.runner import run_check
from monitor.web import publisher as publisher_module
from monitor.web import static_export
from monitor.web.publisher import BEHIND_AFTER, PAGES_UNCUT, Publisher, write_atomically

ROOT = Path(__file__).parents[1]
EXAMPLE = ROOT / "config" / "nginx-tpmon-published.conf"
HOST = "etat.exemple.fr"
LINES = ("pharmacie", "hospitalisation")
NETWORKS = """
stabilization: 2s
defaults: {{interval: 1s, timeout: 800ms, failure_threshold: 1, success_threshold: 1}}
networks:
  alpha:
    name: Alpha
    kind: operateur
    lines: [pharmacie, hospitalisation]
    checks:
      - {{name: dre, flow: facturation, kind: http, url: "{url}/dre"}}
      - {{name: pec, flow: pec, kind: http, url: "{url}/pec"}}
{beta}"""
BETA = """  beta:
    name: Beta
    kind: reseau_de_soins
    lines: [optique]
    checks:
      - {{name: pec, flow: pec, kind: http, url: "{url}/beta"}}
"""


def config_text(site: Path, url: str, *, beta: bool = True) -> str:
    web = f"web: {{public_url: 'https://{HOST}', publish_dir: '{site}'}}\n"
    return web + NETWORKS.format(url=url, beta=BETA.format(url=url) if beta else "")


def adapted(example: str, *, http: int, https: int, cert: Path, site: Path) -> str:
    """The example with this test's ports, certificate and folder, on loopback; nothing else changes."""
    replaced = {
        "listen 80;": f"listen 127.0.0.1:{http};",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https} ssl http2;",
        "/etc/ssl/etat.exemple.fr/fullchain.pem": str(cert),
        "/etc/ssl/etat.exemple.fr/privkey.pem": str(cert),
        "root /var/www/etat;": f"root {site};",
    }
    text = "\n".join(line for line in example.splitlines() if "listen [::]" not in line)  # no IPv6 here
    for old, new in replaced.items():
        assert old in text, f"{EXAMPLE.name} no longer holds {old!r}: update this test with it"
        text = text.replace(old, new)
    return text


@dataclass
class Published:
    server: Server
    target: Target
    site: Path
    https: int
    ca: trustme.CA

    def client(self) -> httpx.Client:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return httpx.Client(base_url=f"https://127.0.0.1:{self.https}", verify=context, headers={"Host": HOST})

    def metric(self, name: str) -> float:
        found = re.search(rf"^{name} (\S+)$", self.server.get("/metrics").text, re.M)
        assert found is not None, f"{name} not in /metrics"
        return float(found.group(1))


@pytest.fixture
def published(tmp_path: Path, target: Target) -> Iterator[Published]:
    binary = nginx_binary()
    site = tmp_path / "site"
    config = tmp_path / "tpmon.yaml"
    config.write_text(config_text(site, target.url("")), encoding="utf-8")
    server = Server(config, tmp_path, {"TPMON_DATABASE_URL": f"sqlite:///{tmp_path}/tpmon.db"})
    server.start()
    root = tmp_path / "nginx"
    root.mkdir()
    ca = trustme.CA()
    cert = root / "server.pem"
    ca.issue_cert("127.0.0.1", HOST).private_key_and_cert_chain_pem.write_to_path(str(cert))
    http, https = free_port(), free_port()
    conf = root / "published.conf"
    conf.write_text(adapted(EXAMPLE.read_text(), http=http, https=https, cert=cert, site=site), encoding="utf-8")
    (root / "nginx.conf").write_text(main_config(root, conf), encoding="utf-8")
    command = [binary, "-p", str(root), "-c", str(root / "nginx.conf"), "-e", str(root / "error.log")]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:

        def listening() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"nginx exited {process.returncode}: {(root / 'error.log').read_text()}")
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", https)) == 0

        wait_for(listening, what="nginx to listen")
        found = Published(server, target, site, https, ca)
        with found.client() as client:  # the first publication in place, with the first probes' states
            wait_for(lambda: _state(client, "alpha") == "operational", timeout=90, what="alpha published operational")
            # its JSON first, then its page: written with a probe's result, it says when that check was
            wait_for(lambda: "Instantané du" in client.get("/reseaux/alpha/").text, what="alpha's page published")
        yield found
    finally:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        server.stop()


def _state(client: httpx.Client, network: str) -> str | None:
    answer = client.get(f"/api/v1/networks/{network}")
    if answer.status_code != 200:
        return None
    state: str = answer.json()["state"]
    return state


@dataclass
class Reader:
    """Hammers nginx on a page, a JSON document and the home page, checking every answer is whole."""

    client: httpx.Client
    answers: Counter[str] = field(default_factory=Counter)
    versions: set[str] = field(default_factory=set)
    broken: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            for path in ("/reseaux/alpha/", "/api/v2/summary.json", "/"):
                answer = self.client.get(path)
                self.answers[path] += 1
                body = answer.content
                if answer.status_code != 200:
                    self.broken.append(f"{path}: {answer.status_code}")
                elif path.endswith(".json"):
                    try:
                        json.loads(body)
                    except ValueError:
                        self.broken.append(f"{path}: not whole JSON ({len(body)} bytes)")
                elif not body.rstrip().endswith(b"</html>"):
                    self.broken.append(f"{path}: not a whole page ({len(body)} bytes)")
                self.versions.add(f"{path} {answer.headers.get('etag')}")


def test_a_target_down_is_served_by_nginx_and_every_answer_is_whole(published: Published) -> None:
    with published.client() as client:
        page = client.get("/reseaux/alpha/")
        assert page.status_code == 200 and page.headers["cache-control"] == "no-cache"
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert "Instantané du" in page.text  # the export's age, on every published page
        assert client.get("/api/v1/status").json()["networks"][0]["id"] == "alpha"  # the .json file
        assert client.get("/reseaux/nulle-part/").status_code == 404
        assert client.get("/.tpmon-export").status_code == 404
        reader = Reader(published.client())
        thread = threading.Thread(target=reader.run, daemon=True)
        thread.start()
        try:
            wait_for(lambda: sum(reader.answers.values()) >= 30, what="the reader's first answers")
            published.target.codes["/pec"] = 503
            said = STATE_ICONS[State.PARTIAL] + "</span>Partiellement</span> indisponible"  # its <h1>
            wait_for(
                lambda: _state(client, "alpha") == "partial" and said in client.get("/reseaux/alpha/").text,
                what="nginx serving alpha partly down",
            )
            assert client.get("/api/v2/summary.json").json()["status"]["indicator"] != "none"
            del published.target.codes["/pec"]  # back: the pages change again under the reader
            wait_for(lambda: _state(client, "alpha") in ("recovering", "operational"), what="alpha back")
            seen = len(reader.versions)
            wait_for(lambda: len(reader.versions) > seen or sum(reader.answers.values()) > 600, what="reads")
        finally:
            reader.stop.set()
            thread.join(30)
    assert reader.broken == []
    assert min(reader.answers.values()) >= 10, reader.answers
    assert len(reader.versions) > 3, "the reader saw no page rewritten while it read"  # 3 paths, several versions
    assert published.metric("tpmon_publish_failures_total") == 0
    assert published.metric("tpmon_publish_files_written_total") > 0


def test_a_removed_network_disappears_and_a_refusing_folder_is_told_then_caught_up(published: Published) -> None:
    server, site = published.server, published.site
    with published.client() as client:
        assert client.get("/reseaux/beta/").status_code == 200
        assert client.get("/badge/beta/optique.svg").status_code == 200
        server.config.write_text(config_text(site, published.target.url(""), beta=False), encoding="utf-8")
        done = server.run("reload", "--config", str(server.config), "--pid-file", str(server.pid_file))
        assert done.returncode == 0, done.stderr
        wait_for(lambda: client.get("/reseaux/beta/").status_code == 404, what="beta's page gone")
        wait_for(lambda: not (site / "reseaux" / "beta").exists(), what="beta's folder gone")
        assert client.get("/badge/beta/optique.svg").status_code == 404
        assert [n["id"] for n in client.get("/api/v1/status").json()["networks"]] == ["alpha"]

        # the folder refuses: alpha's page cannot be written where a plain file now stands
        alpha = site / "reseaux" / "alpha"
        moved = itertools.count()

        def in_the_way() -> bool:
            """alpha's folder moved away whole (the publisher may be writing into it, or make it again), then a
            plain file in its place."""
            if alpha.is_dir():
                alpha.rename(site.parent / f"alpha-moved-{next(moved)}")
            try:
                with alpha.open("x", encoding="utf-8") as blocking:
                    blocking.write("in the way\n")
            except (FileExistsError, IsADirectoryError):
                return False
            return True

        wait_for(in_the_way, what="a plain file in place of alpha's folder")
        published.target.codes["/pec"] = 503
        wait_for(lambda: published.metric("tpmon_publish_failures_total") >= 1, what="the failure counted")
        ready = server.get("/readyz")
        assert ready.status_code == 503 and "published folder behind" in " ".join(ready.json()["problems"])
        stuck = published.metric("tpmon_publish_last_success_timestamp_seconds")
        assert server.log.read_text().count("publishing into") == 1  # said once, however often it is retried
        wait_for(lambda: published.metric("tpmon_publish_behind_seconds") > 0, what="the folder said behind")

        alpha.unlink()  # the way is clear: the next attempt writes what is pending
        wait_for(lambda: server.get("/readyz").status_code == 200, what="ready again")
        wait_for(lambda: _state(client, "alpha") == "partial", what="alpha's state caught up")
        assert client.get("/reseaux/alpha/").status_code == 200
        assert published.metric("tpmon_publish_last_success_timestamp_seconds") > stuck
        wait_for(lambda: published.metric("tpmon_publish_behind_seconds") == 0, what="the folder no longer behind")
        assert "publishing into" in server.log.read_text().rsplit("failed", 1)[1]  # "… again"


def test_an_atomic_write_leaves_no_temporary_file_and_keeps_the_old_one_on_failure(tmp_path: Path) -> None:
    write_atomically(tmp_path, "a/b/index.html", b"one", 0o644)
    assert (tmp_path / "a" / "b" / "index.html").read_bytes() == b"one"
    assert oct((tmp_path / "a" / "b" / "index.html").stat().st_mode & 0o777) == "0o644"
    (tmp_path / "a" / "b" / "c").mkdir()  # a folder where the file should go: the rename fails
    with pytest.raises(OSError):
        write_atomically(tmp_path, "a/b/c", b"two", 0o644)
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == ["c", "index.html"]  # no temporary left


def test_an_atomic_write_is_on_disk_before_its_rename_and_its_rename_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash never leaves an empty or partial file under a published name (ext4 without auto_da_alloc, XFS)."""
    done: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(handle: int) -> None:
        done.append(("fsync", os.readlink(f"/proc/self/fd/{handle}")))
        real_fsync(handle)

    def replace(source: str | Path, target: str | Path) -> None:
        done.append(("rename", f"{source} → {target}"))
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_atomically(tmp_path, "reseaux/alpha/index.html", b"<html>", 0o644)
    folder = str(tmp_path / "reseaux" / "alpha")
    assert [kind for kind, _ in done] == ["fsync", "rename", "fsync"]
    temporary = done[0][1]
    assert temporary.startswith(folder + "/.index.html.") and temporary.endswith(".tmp")  # the bytes, then
    assert done[1][1] == f"{temporary} → {folder}/index.html"  # the name, then
    assert done[2][1] == folder  # the folder's entry
    done.clear()
    write_atomically(tmp_path, "reseaux/alpha/index.html", b"<html>2", 0o644, sync=False)  # a batch syncs after
    assert [kind for kind, _ in done] == ["fsync", "rename"]


def test_a_batchs_files_are_written_at_once_and_one_that_fails_stays_pending_alone(tmp_path: Path) -> None:
    """The files of a batch are written by several threads (their syncs overlap); one the folder refuses is the
    batch's error and stays pending, every other is written, noted on disk and no longer pending."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "blocked").write_bytes(b"a file where a folder is needed")
    publisher = Publisher(cast(Any, None), cast(Any, None), {}, site, f"https://{HOST}")
    publisher._pending["blocked/index.html"] = b"refused"  # first in line: the others are written all the same
    publisher._pending.update({f"reseaux/n{number}/index.html": b"page %d" % number for number in range(9)})
    done = [0, 0]
    with pytest.raises(OSError):
        publisher._write(dict(publisher._pending), done)
    assert publisher._pending == {"blocked/index.html": b"refused"}
    assert done == [9, 0]
    for number in range(9):
        relative = f"reseaux/n{number}/index.html"
        assert (site / relative).read_bytes() == b"page %d" % number == publisher._on_disk[relative]
    assert not [path for path in site.rglob("*.tmp")]  # no temporary file left, the refused one's neither


def test_put_off_pages_go_before_the_put_off_files_of_older_changes_each_group_oldest_first() -> None:
    """A network failing check by check changes every second: each cycle is cut after its first files and puts
    off the rest. Its line pages, put off last, go before the badges and documents of its earlier changes."""
    publisher = Publisher(cast(Any, None), cast(Any, None), {}, Path("/nonexistent"), f"https://{HOST}")
    inventory = static_export.Inventory({"alpha": ("pharmacie", "hospitalisation")}, ())
    publisher._units = {unit.address: unit for unit in static_export.units(inventory)}
    queued = [
        "/badge/alpha/pharmacie.svg",  # the first change's files
        "/api/v1/networks/alpha/lines/pharmacie",
        "/reseaux/alpha/pharmacie",  # its line page
        "/badge/alpha/hospitalisation.svg",  # the next change's
        "/reseaux/alpha/hospitalisation",
    ]
    publisher._deferred.update(dict.fromkeys(queued))
    taken = [publisher._next_put_off() for _ in queued]
    assert taken == [
        "/reseaux/alpha/pharmacie",
        "/reseaux/alpha/hospitalisation",
        "/badge/alpha/pharmacie.svg",
        "/api/v1/networks/alpha/lines/pharmacie",
        "/badge/alpha/hospitalisation.svg",
    ]
    assert not publisher._deferred


def _in_process(
    tmp_path: Path,
    target: Target,
    body: Callable[[Publisher, Services, list[str]], Awaitable[None]],
    meanwhile: Callable[[Services], Awaitable[None]] | None = None,
    clock: Callable[[], datetime] | None = None,
    text: str | None = None,
) -> None:
    """A publisher of a real app (no scheduler: the test probes), its folder's writes listed in order; with
    `meanwhile`, run once while the first publication renders its files (after its pages); with `clock`, the app's;
    with `text`, that config instead of `config_text`'s."""
    config = tmp_path / "tpmon.yaml"
    config.write_text(text or config_text(tmp_path / "site", target.url("")), encoding="utf-8")
    url = f"sqlite:///{tmp_path}/tpmon.db"
    settings = load_config(config)
    if clock is None:
        app = create_app(settings, database_url=url, schedule=False)
    else:
        app = create_app(settings, database_url=url, schedule=False, clock=clock)

    async def run() -> None:
        async with app.router.lifespan_context(app) as state:
            assert state is not None
            services: Services = state["services"]
            publisher = Publisher(services, app, state, tmp_path / "site", f"https://{HOST}")
            plain_unit = static_export.write_unit
            pending = [meanwhile] if meanwhile is not None else []

            async def unit(*args: Any) -> bool:
                if pending and args[0].kind == "file":  # the pages rendered, not yet the documents
                    await pending.pop()(services)
                return await plain_unit(*args)

            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(publisher_module, "write_unit", unit)
                await publisher.publish_all()
            written: list[str] = []
            plain = publisher_module.write_atomically

            def listed(root: Path, relative: str, data: bytes, mode: int, *, sync: bool = True) -> Path:
                written.append(relative)
                return plain(root, relative, data, mode, sync=sync)

            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(publisher_module, "write_atomically", listed)
                await body(publisher, services, written)

    asyncio.run(run())


async def _probe(services: Services, network: str, check: str) -> None:
    found = next(c for c in services.settings.networks[network].checks if c.name == check)
    await run_check(network, found, services.pipeline)


def test_a_change_is_written_documents_first_then_the_pages_readers_look_at_then_the_rest(
    tmp_path: Path, target: Target
) -> None:
    async def body(publisher: Publisher, services: Services, written: list[str]) -> None:
        for check in ("dre", "pec"):
            await _probe(services, "alpha", check)
        await publisher.publish_changes()
        written.clear()
        target.codes["/pec"] = 503
        await _probe(services, "alpha", "pec")
        assert await publisher.publish_changes() is not None
        first = {"api/v1/networks/alpha.json", "api/v1/status.json", "api/v2/summary.json", "api/v2/status.json"}
        assert set(written[:4]) == first, written[:8]
        pages = ["index.html", "reseaux/alpha/index.html", "reseaux/alpha/hospitalisation/index.html"]
        assert [written.index(page) for page in pages] == sorted(written.index(page) for page in pages)
        line, badge = "reseaux/alpha/hospitalisation/index.html", "badge/alpha/hospitalisation.svg"
        assert written.index(line) < written.index(badge)
        assert not any(path.startswith("reseaux/beta/") for path in written)  # beta did not change

    _in_process(tmp_path, target, body)


@pytest.mark.parametrize(
    ("rendered_for", "newer", "cut"),
    [(0.0, ("beta", "/beta"), False), (PAGES_UNCUT, ("beta", "/beta"), True), (PAGES_UNCUT, ("alpha", "/dre"), False)],
)
def test_a_newer_change_goes_before_the_rest_of_an_older_ones_files_which_are_then_written(
    tmp_path: Path, target: Target, rendered_for: float, newer: tuple[str, str], cut: bool
) -> None:
    """A newer change cuts a cycle before its files (put off, then written); before its line pages too, once the
    cycle has rendered for PAGES_UNCUT seconds, if it is a change of another network — not before (they would wait
    for the slices behind every change), nor for a change of the same network (they show it already)."""

    async def body(publisher: Publisher, services: Services, written: list[str]) -> None:
        for network, check in (("alpha", "dre"), ("alpha", "pec"), ("beta", "pec")):
            await _probe(services, network, check)
        while await publisher.publish_changes() is not None:  # the first states, and their files put off
            pass
        written.clear()
        publisher._loop = asyncio.get_running_loop()  # as `run` does: a board change may wake it
        moment = [0.0]
        publisher.clock = lambda: moment[0]
        published = publisher.published_at
        target.codes["/pec"] = 503
        await _probe(services, "alpha", "pec")
        plain_unit = static_export.write_unit
        network, path = newer
        once = [True]

        async def unit(*args: Any) -> bool:
            if args[0].pattern == "/" and once:  # the cycle's first pages took this long, and the board changed again
                once.clear()
                moment[0] += rendered_for
                target.codes[path] = 503
                await _probe(services, network, "pec" if network == "beta" else "dre")
                publisher.wake()
            return await plain_unit(*args)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(publisher_module, "write_unit", unit)
            await publisher.publish_changes()
        assert "reseaux/alpha/index.html" in written and "badge/alpha/hospitalisation.svg" not in written  # put off
        line_page = "reseaux/alpha/hospitalisation/index.html"
        assert (line_page not in written) is cut, written
        if network == "alpha":  # rendered after the newer change: not again for it, only with the background
            urgent = await publisher._urgent(services.snapshot().statuses, publisher._what(), publisher._seen or ())
            address = "/reseaux/alpha/hospitalisation"
            assert "/reseaux/alpha" in [u.address for u in urgent] and address not in [u.address for u in urgent]
            assert address in publisher._background
        assert publisher.published_at == published  # the folder is not the live state yet
        while publisher.published_at == published:  # then written, SLICE seconds of them per cycle
            await publisher.publish_changes()
        assert "badge/alpha/hospitalisation.svg" in written and "reseaux/alpha/hospitalisation/index.html" in written

    _in_process(tmp_path, target, body)


def test_a_newer_change_of_a_network_whose_pages_the_cycle_rendered_already_cuts_it(
    tmp_path: Path, target: Target
) -> None:
    """alpha and beta change together; once alpha's line page is rendered (PAGES_UNCUT seconds into the cycle),
    alpha changes again: its pages already written do not show it, and none of its pages is left in the cycle, so
    the cycle is cut before beta's line page — the next one starts with alpha's documents and pages, then beta's."""

    async def body(publisher: Publisher, services: Services, written: list[str]) -> None:
        for network, check in (("alpha", "dre"), ("alpha", "pec"), ("beta", "pec")):
            await _probe(services, network, check)
        while await publisher.publish_changes() is not None:
            pass
        written.clear()
        publisher._loop = asyncio.get_running_loop()
        moment = [0.0]
        publisher.clock = lambda: moment[0]
        target.codes["/pec"] = target.codes["/beta"] = 503
        await _probe(services, "alpha", "pec")
        await _probe(services, "beta", "pec")
        plain_unit = static_export.write_unit
        once = [True]

        async def unit(*args: Any) -> bool:
            done = await plain_unit(*args)
            if args[0].address == "/reseaux/alpha/hospitalisation" and once:
                once.clear()
                moment[0] += PAGES_UNCUT
                target.codes["/dre"] = 503
                await _probe(services, "alpha", "dre")
                publisher.wake()
            return done

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(publisher_module, "write_unit", unit)
            await publisher.publish_changes()
        beta_line = "reseaux/beta/optique/index.html"
        assert "reseaux/alpha/hospitalisation/index.html" in written and beta_line not in written, written
        written.clear()
        publisher._wakeup.clear()
        await publisher.publish_changes()
        alpha = written.index("api/v1/networks/alpha.json")
        assert alpha < written.index("reseaux/alpha/pharmacie/index.html") < written.index(beta_line), written

    _in_process(tmp_path, target, body)


def test_a_change_during_the_first_publication_is_published_next(tmp_path: Path, target: Target) -> None:
    async def change(services: Services) -> None:  # after the first publication read the state
        for check in ("dre", "pec"):
            await _probe(services, "alpha", check)

    async def body(publisher: Publisher, services: Services, written: list[str]) -> None:
        published = json.loads((tmp_path / "site" / "api" / "v1" / "networks" / "alpha.json").read_bytes())
        assert published["state"] == "operational"  # its JSON was rendered after the change
        page = tmp_path / "site" / "reseaux" / "alpha" / "index.html"
        assert "Opérationnel" not in page.read_text(encoding="utf-8")  # its page before: told what it saw then
        await publisher.publish_changes()
        assert "reseaux/alpha/index.html" in written
        assert "Opérationnel" in page.read_text(encoding="utf-8")

    _in_process(tmp_path, target, body, meanwhile=change)


def test_a_change_reads_the_networks_last_results_once_and_its_line_pages_say_what_its_json_says(
    tmp_path: Path, target: Target
) -> None:
    """Its line pages, in both languages, share one read of the network's last results (the old code read each
    check's once per page and per language); each page shows the failed probe and the state its JSON states."""

    async def body(publisher: Publisher, services: Services, written: list[str]) -> None:
        for network, check in (("alpha", "dre"), ("alpha", "pec"), ("beta", "pec")):
            await _probe(services, network, check)
        while await publisher.publish_changes() is not None:
            pass
        target.codes["/pec"] = 503
        await _probe(services, "alpha", "pec")
        assert await services.writer.flush()  # its result stored, as the writer does within its interval
        reads: list[str] = []

        def note(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
            if statement.lstrip().upper().startswith("SELECT") and "FROM probe_result" in statement:
                reads.append(statement)

        sqlalchemy.event.listen(services.store.engine, "before_cursor_execute", note)
        try:
            written.clear()
            assert await publisher.publish_changes() is not None
        finally:
            sqlalchemy.event.remove(services.store.engine, "before_cursor_execute", note)
        lines = ("pharmacie", "hospitalisation")
        assert {"reseaux/alpha/hospitalisation/index.html", "en/reseaux/alpha/hospitalisation/index.html"} <= set(
            written
        )
        assert len(reads) <= 2, reads  # the last results of alpha's checks, and its page's latency by hour
        site = tmp_path / "site"
        published = json.loads((site / "api" / "v1" / "networks" / "alpha.json").read_bytes())
        states = {line["id"]: State(line["state"]) for line in published["lines"]}
        assert states["hospitalisation"] != State.OPERATIONAL  # it requires pec; pharmacie does not
        last = {
            "hospitalisation": {"fr": "échec, ", "en": "failed, "},
            "pharmacie": {"fr": "réussi, ", "en": "succeeded, "},
        }
        for line in lines:
            languages: tuple[tuple[Lang, str], ...] = (("fr", ""), ("en", "en/"))
            for lang, prefix in languages:
                page = (site / prefix / "reseaux" / "alpha" / line / "index.html").read_text(encoding="utf-8")
                assert STATE_LABELS[states[line]][lang] in page, (line, lang)
                assert last[line][lang] in page, (line, lang)  # the last probe the JSON's state was decided on

    _in_process(tmp_path, target, body)


def test_a_changes_pages_show_its_failed_probe_and_transition_the_writer_had_not_stored_yet(
    tmp_path: Path, target: Target
) -> None:
    """The writer stores results every half second: a change is published sooner. The publisher has the store take
    what the board saw before its pages read it (`store_seen`): the line pages show the probe that failed and the
    transition (not the store's older success), and read the network's last results once for all of them."""

    async def body(publisher: Publisher, services: Services, written: list[str]) -> None:
        publisher.store_seen = services.writer.flush  # as `tpmon serve` wires it
        for network, check in (("alpha", "dre"), ("alpha", "pec"), ("beta", "pec")):
            await _probe(services, network, check)
        while await publisher.publish_changes() is not None:
            pass
        target.codes["/pec"] = 503
        with pytest.MonkeyPatch.context() as patch:  # the writer's own flushes do not come in time
            patch.setattr(services.writer, "_flush_interval", 3600.0)
            await _probe(services, "alpha", "pec")
            assert services.writer._results, "the failed result is still in the writer's buffer"
            reads: list[str] = []

            def note(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
                if statement.lstrip().upper().startswith("SELECT") and "FROM probe_result" in statement:
                    reads.append(statement)

            sqlalchemy.event.listen(services.store.engine, "before_cursor_execute", note)
            try:
                assert await publisher.publish_changes() is not None
            finally:
                sqlalchemy.event.remove(services.store.engine, "before_cursor_execute", note)
        assert len(reads) <= 2, reads  # alpha's last results once, its page's latency by hour
        site = tmp_path / "site"
        languages: tuple[tuple[Lang, str], ...] = (("fr", ""), ("en", "en/"))
        for lang, prefix in languages:
            page = (site / prefix / "reseaux" / "alpha" / "hospitalisation" / "index.html").read_text(encoding="utf-8")
            assert {"fr": "échec, ", "en": "failed, "}[lang] in page, lang  # the failed probe, not the success before
            history = page[page.index('id="history-title"') :]
            assert f"{STATE_ICONS[State.DOWN]}</span> {STATE_LABELS[State.DOWN][lang]}" in history  # its transition

    _in_process(tmp_path, target, body)


def _snapshot_line(page: Path) -> str:
    found = re.search(r'<p class="snapshot"[^>]*>(.*?)</p>', page.read_text(encoding="utf-8"))
    assert found is not None, page
    return found.group(1)


def _line_state(services: Services, line: str) -> State:
    status = services.board.get(ComponentRef("line", "alpha", line))
    assert status is not None
    return status.state


def test_the_pages_of_lines_whose_state_changed_go_before_those_whose_details_changed(
    tmp_path: Path, target: Target
) -> None:
    """pharmacie requires facturation and pec, hospitalisation pec alone. dre fails: pharmacie is down. Then pec
    fails: hospitalisation goes down, pharmacie stays down — its page shows pec, so it is rendered too, but after
    hospitalisation's, although it comes first in the config: the state word a reader looks for first."""
    overrides = "    line_overrides:\n      pharmacie: {requires: [facturation, pec]}\n"
    overrides += "      hospitalisation: {requires: [pec]}\n"
    text = config_text(tmp_path / "site", target.url(""), beta=False).replace(
        "    checks:\n", overrides + "    checks:\n"
    )

    async def body(publisher: Publisher, services: Services, written: list[str]) -> None:
        for check in ("dre", "pec"):
            await _probe(services, "alpha", check)
        while await publisher.publish_changes() is not None:
            pass
        target.codes["/dre"] = 503
        await _probe(services, "alpha", "dre")
        while await publisher.publish_changes() is not None:
            pass
        states = {line: _line_state(services, line) for line in LINES}
        assert states == {"pharmacie": State.DOWN, "hospitalisation": State.OPERATIONAL}
        written.clear()
        target.codes["/pec"] = 503
        await _probe(services, "alpha", "pec")
        assert await publisher.publish_changes() is not None
        assert _line_state(services, "hospitalisation") == _line_state(services, "pharmacie") == State.DOWN
        pharmacie, hospitalisation = (f"reseaux/alpha/{line}/index.html" for line in LINES)
        assert written.index(hospitalisation) < written.index(pharmacie), written

    _in_process(tmp_path, target, body, text=text)


def test_a_line_page_showing_nothing_that_changed_is_written_after_the_changes_files_saying_the_same_states(
    tmp_path: Path, target: Target
) -> None:
    """pec fails: hospitalisation (which requires pec) is rendered with the change; pharmacie (facturation only)
    shows none of what changed: its page, which already says its current state, comes after every file of the
    change, then says the same snapshot as the others (two minutes later: the snapshot line, to the minute, differs
    from the page's first one, so the page must be written again)."""
    now = [datetime.now(UTC)]

    async def body(publisher: Publisher, services: Services, written: list[str]) -> None:
        for network, check in (("alpha", "dre"), ("alpha", "pec"), ("beta", "pec")):
            await _probe(services, network, check)
        while await publisher.publish_changes() is not None:
            pass
        site = tmp_path / "site"
        pharmacie, hospitalisation = (site / "reseaux" / "alpha" / line / "index.html" for line in LINES)
        assert STATE_LABELS[State.OPERATIONAL]["fr"] in pharmacie.read_text(encoding="utf-8")
        written.clear()
        first_snapshot = _snapshot_line(pharmacie)
        now[0] += timedelta(minutes=2)
        target.codes["/pec"] = 503
        await _probe(services, "alpha", "pec")
        assert await publisher.publish_changes() is not None
        published = json.loads((site / "api" / "v1" / "networks" / "alpha.json").read_bytes())
        states = {line["id"]: State(line["state"]) for line in published["lines"]}
        assert states["pharmacie"] == State.OPERATIONAL and states["hospitalisation"] != State.OPERATIONAL
        badge = written.index("badge/alpha/hospitalisation.svg")  # a file of the change, after its pages
        assert written.index("reseaux/alpha/hospitalisation/index.html") < badge
        assert "reseaux/alpha/pharmacie/index.html" not in written[:badge]
        assert STATE_LABELS[State.OPERATIONAL]["fr"] in pharmacie.read_text(encoding="utf-8")  # still true
        while await publisher.publish_changes() is not None:
            pass
        assert "reseaux/alpha/pharmacie/index.html" in written  # rendered again after the change's files
        assert _snapshot_line(pharmacie) == _snapshot_line(hospitalisation) != first_snapshot

    _in_process(tmp_path, target, body, clock=lambda: now[0])


def test_a_changes_line_pages_are_written_while_the_board_changes_during_every_cycle(
    tmp_path: Path, target: Target
) -> None:
    """alpha's pec fails; then, as under a storm of changes on a loaded machine, the board changes again (beta
    flips) while every cycle renders its first pages: each cycle is cut there, its other files put off. The put
    off files still go out, SLICE seconds of them per cycle (the old code never wrote them while the storm
    lasted: alpha's line pages kept saying "operational" while its JSON said otherwise)."""

    async def body(publisher: Publisher, services: Services, written: list[str]) -> None:
        for network, check in (("alpha", "dre"), ("alpha", "pec"), ("beta", "pec")):
            await _probe(services, network, check)
        while await publisher.publish_changes() is not None:
            pass
        publisher._loop = asyncio.get_running_loop()
        plain_unit = static_export.write_unit
        flips = [0]

        async def unit(*args: Any) -> bool:
            found = await plain_unit(*args)
            if args[0].pattern == "/":  # the home page, in every cycle's first pages: the board changes again
                flips[0] += 1
                target.codes["/beta"] = 503 if flips[0] % 2 else 200
                await _probe(services, "beta", "pec")
                publisher.wake()  # as the pipeline's listener does
            return found

        site = tmp_path / "site"
        pages = [site / prefix / "reseaux" / "alpha" / "hospitalisation" / "index.html" for prefix in ("", "en")]
        assert all(f'answer state-{State.OPERATIONAL.value}"' in page.read_text(encoding="utf-8") for page in pages)
        target.codes["/pec"] = 503
        await _probe(services, "alpha", "pec")
        published = json.loads((site / "api" / "v1" / "networks" / "alpha.json").read_bytes())
        cycles = 0
        # each cycle writes at least one put-off unit, the oldest first: within as many cycles as there are units
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(publisher_module, "write_unit", unit)
            while cycles < len(publisher._units):
                cycles += 1
                await publisher.publish_changes()
                published = json.loads((site / "api" / "v1" / "networks" / "alpha.json").read_bytes())
                state = next(line["state"] for line in published["lines"] if line["id"] == "hospitalisation")
                if all(f'answer state-{state}"' in page.read_text(encoding="utf-8") for page in pages):
                    break
        assert flips[0] == cycles  # every cycle was cut by a change
        assert state != State.OPERATIONAL.value
        for page in pages:
            assert f'answer state-{state}"' in page.read_text(encoding="utf-8"), (page, cycles)

    _in_process(tmp_path, target, body)


def test_a_change_the_folder_does_not_show_is_counted_from_its_wake_and_said_past_a_minute(
    tmp_path: Path, target: Target, caplog: pytest.LogCaptureFixture
) -> None:
    """`behind()` (the metric `tpmon_publish_behind_seconds`) counts from the first change not written yet, even
    while no cycle runs (a cycle stuck); past BEHIND_AFTER it is logged once, and once when caught up; a change
    cut short by a newer change (its files put off) leaves the first change counted."""
    wall = [1_000_000.0]

    async def body(publisher: Publisher, services: Services, written: list[str]) -> None:
        publisher.wall = lambda: wall[0]
        publisher._loop = asyncio.get_running_loop()
        for network, check in (("alpha", "dre"), ("alpha", "pec"), ("beta", "pec")):
            await _probe(services, network, check)
        while await publisher.publish_changes() is not None:
            pass
        assert publisher.behind() == 0
        target.codes["/pec"] = 503
        await _probe(services, "alpha", "pec")
        publisher.wake()  # as the pipeline's listener does
        wall[0] += 30
        assert publisher.check_behind() == 30  # no cycle ran: the change is 30 s old
        wall[0] += BEHIND_AFTER - 30
        with caplog.at_level(logging.WARNING, logger="tpmon.publish"):
            assert publisher.check_behind() == BEHIND_AFTER
            wall[0] += 10
            assert publisher.check_behind() == BEHIND_AFTER + 10
            said = [r for r in caplog.records if "has not shown a change for" in r.getMessage()]
            assert len(said) == 1 and said[0].levelno == logging.ERROR, caplog.records  # once per episode

            plain_unit = static_export.write_unit
            late = [True]

            async def unit(*args: Any) -> bool:
                if late and args[0].pattern == "/":  # another change while the cycle renders
                    late.clear()
                    publisher.wake()
                    wall[0] += 5
                return await plain_unit(*args)

            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(publisher_module, "write_unit", unit)
                await publisher.publish_changes()  # cut by the change: the first change's other files put off
            assert not late and publisher._deferred
            assert publisher.check_behind() == BEHIND_AFTER + 15  # not written whole: still counted from it
            cycles = 0
            while publisher._unpublished_since is not None and cycles < len(publisher._units):
                cycles += 1
                await publisher.publish_changes()
            assert publisher.check_behind() == 0
        assert [r.getMessage() for r in caplog.records].count(
            f"the published folder {publisher.target} follows the changes again"
        ) == 1

    _in_process(tmp_path, target, body)


def test_a_newer_change_puts_its_networks_pages_first_in_the_rest_of_a_cycle(tmp_path: Path, target: Target) -> None:
    """A cycle rendering many networks' pages (the first after the whole export catches up with every change made
    while it was rendered) does not make a newer change wait for all of them: the rest of the cycle renders the
    pages of the networks it reached first, then the others (its files are put off for the newer change)."""

    async def body(publisher: Publisher, services: Services, written: list[str]) -> None:
        for network, check in (("alpha", "dre"), ("alpha", "pec"), ("beta", "pec")):
            await _probe(services, network, check)
        while await publisher.publish_changes() is not None:
            pass
        publisher._loop = asyncio.get_running_loop()
        publisher.clock = lambda: 0.0  # no time passes: nothing is cut for the newer change
        target.codes["/pec"] = 503
        target.codes["/beta"] = 503
        await _probe(services, "alpha", "pec")
        await _probe(services, "beta", "pec")
        plain_unit = static_export.write_unit
        rendered: list[str] = []

        async def unit(*args: Any) -> bool:
            rendered.append(args[0].address)
            if args[0].pattern == "/" and rendered.count("/") == 1:  # beta comes back while the home page renders
                target.codes["/beta"] = 200
                await _probe(services, "beta", "pec")
                publisher.wake()
            return await plain_unit(*args)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(publisher_module, "write_unit", unit)
            await publisher.publish_changes()
        after = rendered[rendered.index("/") + 1 :]
        pages = [address for address in after if address.startswith("/reseaux/")]
        assert "/reseaux/beta/optique" in pages and "/reseaux/alpha/hospitalisation" in pages, rendered
        beta = [number for number, address in enumerate(pages) if address.startswith("/reseaux/beta")]
        alpha = [number for number, address in enumerate(pages) if address.startswith("/reseaux/alpha/")]
        assert max(beta) < min(alpha), pages  # beta's pages first, then alpha's line pages

    _in_process(tmp_path, target, body)
