"""config/nginx-tpmon.conf, the reverse proxy the README recommends, run by Debian's nginx in front of a real
`tpmon serve`: only its ports, certificate paths and upstream address are changed, the rest is the file as shipped.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trustme
from targets import Server, Target, alpha_config, free_port, wait_for

ROOT = Path(__file__).parents[1]
EXAMPLE = ROOT / "config" / "nginx-tpmon.conf"
HOST = "etat.exemple.fr"


def nginx_binary() -> str:
    found = os.environ.get("TPMON_NGINX", "").strip() or shutil.which("nginx") or shutil.which("/usr/sbin/nginx")
    if not found:
        message = "nginx is not installed: run .ci/nginx.sh (or set TPMON_NGINX)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def adapted(example: str, *, http: int, https: int, upstream: int, cert: Path) -> str:
    """The example with this test's ports and certificate, on loopback; nothing else changes."""
    replaced = {
        "listen 80;": f"listen 127.0.0.1:{http};",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https} ssl http2;",
        "server 127.0.0.1:8080;": f"server 127.0.0.1:{upstream};",
        "/etc/ssl/etat.exemple.fr/fullchain.pem": str(cert),
        "/etc/ssl/etat.exemple.fr/privkey.pem": str(cert),
    }
    text = "\n".join(line for line in example.splitlines() if "listen [::]" not in line)  # no IPv6 here
    for old, new in replaced.items():
        assert old in text, f"{EXAMPLE.name} no longer holds {old!r}: update this test with it"
        text = text.replace(old, new)
    return text


def main_config(root: Path, site: Path) -> str:
    """nginx.conf around the example, as Debian's /etc/nginx/nginx.conf includes conf.d/*.conf."""
    names = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    temp = "\n    ".join(f"{name}_temp_path {root / name};" for name in names)
    return f"""daemon off;
user root;
worker_processes 1;
pid {root / "nginx.pid"};
error_log {root / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    {temp}
    include {site};
}}
"""


@dataclass
class Proxy:
    http: int
    https: int
    ca: trustme.CA

    def client(self) -> httpx.Client:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return httpx.Client(base_url=f"https://127.0.0.1:{self.https}", verify=context, headers={"Host": HOST})


@pytest.fixture
def tpmon(tmp_path: Path, target: Target) -> Iterator[Server]:
    config = tmp_path / "tpmon.yaml"
    config.write_text(f"web: {{public_url: 'https://{HOST}'}}\n" + alpha_config(target.url("")), encoding="utf-8")
    srv = Server(config, tmp_path, {"TPMON_DATABASE_URL": f"sqlite:///{tmp_path}/tpmon.db"})
    srv.start()
    try:  # settled: the first probes change the page, which the conditional requests below must not see
        wait_for(lambda: srv.status()["networks"][0]["state"] == "operational", what="alpha operational")
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def proxy(tmp_path: Path, tpmon: Server) -> Iterator[Proxy]:
    binary = nginx_binary()
    root = tmp_path / "nginx"
    root.mkdir()
    ca = trustme.CA()
    cert = root / "server.pem"
    ca.issue_cert("127.0.0.1", HOST).private_key_and_cert_chain_pem.write_to_path(str(cert))
    http, https = free_port(), free_port()
    site = root / "tpmon.conf"
    site.write_text(adapted(EXAMPLE.read_text(), http=http, https=https, upstream=tpmon.port, cert=cert), "utf-8")
    (root / "nginx.conf").write_text(main_config(root, site), encoding="utf-8")
    checked = subprocess.run(
        [binary, "-t", "-p", str(root), "-c", str(root / "nginx.conf"), "-e", str(root / "error.log")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen(
        [binary, "-p", str(root), "-c", str(root / "nginx.conf"), "-e", str(root / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def listening() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"nginx exited {process.returncode}: {(root / 'error.log').read_text()}")
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", https)) == 0

        wait_for(listening, what="nginx to listen")
        yield Proxy(http, https, ca)
    finally:
        process.send_signal(signal.SIGQUIT)  # graceful
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def test_pages_documents_and_headers_through_the_proxy(proxy: Proxy) -> None:
    with proxy.client() as client:
        page = client.get("/")
        assert page.status_code == 200 and '<html lang="fr">' in page.text
        assert page.headers["strict-transport-security"] == "max-age=31536000"
        assert "content-security-policy" in page.headers  # tpmon's own headers pass through
        assert page.headers["server"] == "nginx"  # no version
        for _ in range(3):  # the page changes each minute ("last checked"): a 200 only with a new ETag
            again = client.get("/", headers={"If-None-Match": page.headers["etag"]})
            if again.status_code == 304:
                break
            assert again.status_code == 200 and again.headers["etag"] != page.headers["etag"]
            page = again
        else:
            pytest.fail("no 304 through the proxy")
        assert client.get("/?lang=en").headers["content-language"] == "en"
        for path in ("/reseaux/alpha", "/api/v2/summary.json", "/api/v1/status", "/badge/alpha/optique.svg"):
            assert client.get(path).status_code == 200, path
        feed = client.get("/feed.atom", headers={"Host": "evil.example"})  # a Host nginx does not serve
        assert f'href="https://{HOST}/feed.atom"' in feed.text and "evil" not in feed.text
        assert client.get("/api/v2/summary.json").json()["page"]["url"] == f"https://{HOST}"
        for hidden in ("/metrics", "/readyz"):
            assert client.get(hidden).status_code == 404, hidden
    plain = httpx.get(f"http://127.0.0.1:{proxy.http}/reseaux/alpha?x=1", headers={"Host": HOST})
    assert plain.status_code == 301 and plain.headers["location"] == f"https://{HOST}/reseaux/alpha?x=1"


def test_the_proxy_refuses_oversized_heads_bodies_and_floods(proxy: Proxy) -> None:
    with proxy.client() as client:
        assert client.get("/", headers={"X-Big": "a" * 9000}).status_code == 400  # one header over 8k
        assert client.get("/" + "a" * 9000).status_code == 414
        assert client.post("/", content=b"x" * 4097).status_code == 413  # over tpmon's own form cap
        assert client.post("/", content=b"x").status_code == 404  # tpmon's own answer: no form there

    def burst(_: int) -> int:
        with proxy.client() as one:
            return sum(one.get("/healthz").status_code == 429 for _ in range(20))

    with ThreadPoolExecutor(8) as pool:
        limited = sum(pool.map(burst, range(8)))  # 160 requests at once from one address, 100 allowed at once
    assert limited >= 40


def test_nginx_lets_go_of_an_idle_upstream_connection_before_tpmon_closes_it() -> None:
    """tpmon closes idle connections after web.keepalive_timeout: a request nginx sent on one at that moment
    would fail (502), so nginx's upstream keepalive_timeout must be shorter."""
    from monitor.config import WebSettings

    text = EXAMPLE.read_text()
    upstream = re.search(r"upstream tpmon \{(.*?)\}", text, re.S)
    assert upstream is not None
    found = re.search(r"keepalive_timeout (\d+)s;", upstream.group(1))
    assert found is not None and int(found.group(1)) < WebSettings().keepalive_timeout


def test_the_proxy_takes_the_bodies_of_the_public_forms_and_no_more() -> None:
    from monitor.web.subscription_pages import MAX_FORM

    found = re.search(r"client_max_body_size (\d+)k;", EXAMPLE.read_text())
    assert found is not None and int(found.group(1)) * 1024 == MAX_FORM
