"""The peer: Prometheus + blackbox_exporter probing the same farm, the same checks, at the same rate.

Adapted from the peer harness (`run_prom_blackbox.py`). One blackbox module per kind of check, asking what
tpmon's conditions ask (status, "Connexion" in the portal's body, the JSON status and Content-Type of `pec`),
with the local CA in `tls_config` for HTTPS; one Prometheus job per module (file_sd), scrape interval = the
checks' interval, so that each target scrape is one probe. Both run as child processes on free ports, with
their data in a temp folder. Needs the Debian packages `prometheus prometheus-blackbox-exporter`.

Figures over the window: CPU of both processes (utime+stime), peak RSS (VmHWM, summed), probes counted at
the target, and as the scheduling lag the 0.99 quantile of Prometheus' own
`prometheus_target_interval_length_seconds` minus the interval (how late a scrape, hence a probe, ran).
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from farm import Farm
from meter import Window, free_port, load_1m, peak_rss_mib, say, stop, wait_until
from workload import Target, intended_probes

MODULES = ("plain", "portal", "pec")


def module_of(target: Target) -> str:
    return {"portail_ps": "portal", "pec": "pec"}.get(target.flow, "plain")


def prom_duration(seconds: float) -> str:
    """A duration as Prometheus writes it (the `interval` label of its own metrics): 10s, 1m, 1m30s, 500ms."""
    ms = round(seconds * 1000)
    if ms % 1000:
        return f"{ms}ms"
    minutes, secs = divmod(ms // 1000, 60)
    return (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs or not minutes else "")


def blackbox_config(timeout: float, ca_file: Path | None) -> str:
    tls = f"      tls_config: {{ca_file: {json.dumps(str(ca_file))}}}\n" if ca_file is not None else ""
    common = (
        f"    prober: http\n    timeout: {prom_duration(timeout)}\n    http:\n"
        "      preferred_ip_protocol: ip4\n      ip_protocol_fallback: false\n" + tls
    )
    return (
        "modules:\n"
        "  plain:\n" + common + "  portal:\n" + common + "      valid_status_codes: [200]\n"
        "      fail_if_body_not_matches_regexp: ['Connexion']\n"
        "  pec:\n" + common + '      fail_if_body_not_matches_regexp: [\'"status": *"UP"\']\n'
        "      fail_if_header_not_matches:\n"
        "        - {header: Content-Type, regexp: '^application/json'}\n"
    )


def prometheus_config(root: Path, interval: float, timeout: float, bb_port: int) -> str:
    lines = [
        "global:",
        f"  scrape_interval: {prom_duration(interval)}",
        f"  scrape_timeout: {prom_duration(timeout)}",
        "  evaluation_interval: 1m",
        "scrape_configs:",
    ]
    for module in MODULES:
        lines += [
            f"  - job_name: bb_{module}",
            "    metrics_path: /probe",
            f"    params: {{module: [{module}]}}",
            f"    file_sd_configs: [{{files: ['{root / f'{module}.json'}'], refresh_interval: 5m}}]",
            "    relabel_configs:",
            "      - {source_labels: [__address__], target_label: __param_target}",
            "      - {source_labels: [__param_target], target_label: instance}",
            f"      - {{target_label: __address__, replacement: '127.0.0.1:{bb_port}'}}",
        ]
    return "\n".join(lines) + "\n"


def metric(text: str, name: str, labels: str = "") -> float | None:
    """Sum of the samples of `name` whose label set contains `labels` (a literal such as `quantile="0.99"`)."""
    total, found = 0.0, False
    for match in re.finditer(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)", text, re.M):
        if labels in (match.group(1) or ""):
            total += float(match.group(2))
            found = True
    return total if found else None


def versions() -> dict[str, str]:
    def first_line(command: str) -> str:
        done = subprocess.run([command, "--version"], capture_output=True, text=True, check=False)
        return (done.stdout or done.stderr).split("\n")[0]

    return {name: first_line(name) for name in ("prometheus", "prometheus-blackbox-exporter")}


def run(
    farm: Farm,
    targets: list[Target],
    *,
    interval: float,
    timeout: float,
    https: bool,
    window: float,
    root: Path,
) -> dict[str, Any]:
    """One measured window of Prometheus + blackbox_exporter on `targets`; stops both before returning."""
    for binary in ("prometheus", "prometheus-blackbox-exporter"):
        if shutil.which(binary) is None:
            raise SystemExit(
                "the peer needs apt-get install -y --no-install-recommends prometheus prometheus-blackbox-exporter"
            )
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    base = farm.base(https)
    for module in MODULES:
        urls = [base + t.path for t in targets if module_of(t) == module]
        (root / f"{module}.json").write_text(json.dumps([{"targets": urls}]), encoding="utf-8")
    bb_port, prom_port = free_port(), free_port()
    (root / "blackbox.yml").write_text(blackbox_config(timeout, farm.ca_file if https else None), encoding="utf-8")
    (root / "prometheus.yml").write_text(prometheus_config(root, interval, timeout, bb_port), encoding="utf-8")
    api = httpx.Client(base_url=f"http://127.0.0.1:{prom_port}", timeout=60, trust_env=False)
    procs: list[subprocess.Popen[bytes]] = []
    load_before = load_1m()
    try:
        bb_log = (root / "blackbox.log").open("wb")
        bb = subprocess.Popen(
            [
                "prometheus-blackbox-exporter",
                f"--config.file={root / 'blackbox.yml'}",
                f"--web.listen-address=127.0.0.1:{bb_port}",
                "--log.level=warn",
            ],
            stdout=bb_log,
            stderr=bb_log,
            stdin=subprocess.DEVNULL,
        )
        procs.append(bb)

        def bb_up() -> bool:
            if bb.poll() is not None:
                raise RuntimeError(f"blackbox_exporter exited {bb.returncode}: {(root / 'blackbox.log').read_text()}")
            return httpx.get(f"http://127.0.0.1:{bb_port}/metrics", timeout=2).status_code == 200

        wait_until(bb_up, 30, "blackbox_exporter")
        pr_log = (root / "prometheus.log").open("wb")
        pr = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={root / 'prometheus.yml'}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--storage.tsdb.retention.time=2h",
                "--log.level=warn",
            ],
            stdout=pr_log,
            stderr=pr_log,
            stdin=subprocess.DEVNULL,
        )
        procs.append(pr)

        def query(expr: str, at: float | None = None) -> float | None:
            params = {"query": expr} | ({"time": f"{at:.3f}"} if at is not None else {})
            result = api.get("/api/v1/query", params=params).json()["data"]["result"]
            return float(result[0]["value"][1]) if result else None

        def all_scraped() -> bool:
            if pr.poll() is not None:
                raise RuntimeError(f"prometheus exited {pr.returncode}: {(root / 'prometheus.log').read_text()}")
            return (query('count(up{job=~"bb_.+"})') or 0) >= len(targets)

        started = time.monotonic()
        say(f"peer: prometheus pid {pr.pid}, blackbox pid {bb.pid}; waiting for every target's first scrape")
        settled = True
        try:
            wait_until(all_scraped, 5 * interval + 60, "every target scraped once", every=1.0)
        except RuntimeError as exc:
            say(f"peer: {exc}; measuring anyway")
            settled = False
        time.sleep(interval)  # plus one interval: every target is in its steady period
        settle_s = time.monotonic() - started
        label = f'interval="{prom_duration(interval)}"'
        meter = Window({"prometheus": [pr.pid], "blackbox_exporter": [bb.pid], "nginx": farm.pids()})
        before = api.get("/metrics").text
        mark0 = farm.mark()
        meter.start()
        say(f"peer: measuring {window:g} s")
        time.sleep(window)
        figures = meter.stop()
        mark1 = farm.mark()
        after = api.get("/metrics").text
        arrivals = farm.arrivals(mark0, mark1)
        span = f"{round(mark1.at - mark0.at)}s"
        success = query(f'avg(avg_over_time(probe_success{{job=~"bb_.+"}}[{span}]))', mark1.at)
        scrape_p99 = query(f'quantile(0.99, max_over_time(scrape_duration_seconds{{job=~"bb_.+"}}[{span}]))', mark1.at)
        interval_p99 = metric(after, "prometheus_target_interval_length_seconds", f'{label},quantile="0.99"')
        scrapes = (metric(after, "prometheus_target_interval_length_seconds_count", label) or 0) - (
            metric(before, "prometheus_target_interval_length_seconds_count", label) or 0
        )
        samples = (metric(after, "prometheus_tsdb_head_samples_appended_total") or 0) - (
            metric(before, "prometheus_tsdb_head_samples_appended_total") or 0
        )
        rss = peak_rss_mib([pr.pid, bb.pid])
        for name, proc in (("blackbox_exporter", bb), ("prometheus", pr)):
            if proc.poll() is not None:
                raise RuntimeError(f"{name} died during the window")
    finally:
        api.close()
        for proc in reversed(procs):
            stop(proc, signal.SIGTERM, 20)
    procs_cpu = figures["procs"]
    cpu = procs_cpu["prometheus"]["cpu_s"] + procs_cpu["blackbox_exporter"]["cpu_s"]
    wall = mark1.at - mark0.at
    lag_p99 = None if interval_p99 is None else max(0.0, interval_p99 - interval)
    return {
        "contender": "prometheus+blackbox_exporter",
        "settled": settled,
        "settle_s": round(settle_s, 1),
        "cpu_s": round(cpu, 3),
        "cpu_prometheus_s": procs_cpu["prometheus"]["cpu_s"],
        "cpu_blackbox_s": procs_cpu["blackbox_exporter"]["cpu_s"],
        "cpu_share_of_one_core": round(cpu / figures["wall_s"], 3),
        "peak_rss_mib": round(rss, 1),
        "arrivals": arrivals,
        "window_s": round(wall, 3),
        "meter": figures,
        "lag_p99_ms": None if lag_p99 is None else round(lag_p99 * 1000, 1),
        "lag_source": "prometheus_target_interval_length_seconds p99 - interval (10 min summary)",
        "success_ratio": None if success is None else round(success, 4),
        "scrape_duration_p99_ms": None if scrape_p99 is None else round(scrape_p99 * 1000, 1),
        "probes_by_prometheus": int(scrapes),
        "samples_appended_per_probe": round(samples / scrapes, 1) if scrapes else None,
        "intended_in_window": intended_probes(len(targets), interval, wall),
        "load_1m_before_start": load_before,
    }
