"""`tpmon demo` as a user runs it (faster): on 19 February, Viamedis optique is back and the consigne written on
8 February, during the outage, is shown as outdated — never as today's advice — on every page that shows it."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import datetime
from html import unescape
from pathlib import Path
from typing import Any

import httpx
from targets import free_port, interrupt, wait_for

SPEED = 16_000  # the story's 21 days in about 2 minutes, as test_demo_run.py
CONSIGNE = "aucune prise en charge ne pourra être enregistrée avant la semaine prochaine"
DATED = "Consigne du jeu. 8 févr. 2024, 10:00, antérieure au dernier changement d'état"
DATED_EN = "Advice of Thu 8 Feb 2024, 10:00, older than the last change of state"
RECOVERED = datetime.fromisoformat("2024-02-19T12:00+01:00")  # declared operational at 09:00, then a tick
RESOLVED = datetime.fromisoformat("2024-02-21T09:00+01:00")  # the incident is resolved: consignes withdrawn


def text(html: str) -> str:
    """The visible text, entities resolved, spaces collapsed."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def outdated_block(html: str) -> str:
    """The block of the outdated practitioners' consigne (the HTML from its class to the end of its details)."""
    found = re.search(r'<div class="consigne consigne-outdated">(.*?)</details>', html, re.S)
    assert found, "no outdated consigne on the page"
    return found.group(1)


def test_on_19_february_the_optique_consigne_of_8_february_is_outdated(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "demo.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "demo", "--port", str(port), "--speed", str(SPEED)],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def scenario_time() -> datetime | None:
            if proc.poll() is not None:
                raise AssertionError((tmp_path / "demo.log").read_text())
            status: dict[str, Any] = httpx.get(f"{base}/api/v1/status", timeout=5).json()
            return datetime.fromisoformat(status["checked_at"]) if status["checked_at"] else None

        def pages() -> dict[str, str] | None:
            """The pages, read between 19 February noon and the resolution (the clock read before and after)."""
            before = scenario_time()
            if before is None or before < RECOVERED:
                return None
            assert before < RESOLVED, f"the demo ran past the window: {before}"
            read = {
                path: httpx.get(f"{base}{path}", timeout=5).text
                for path in ("/reseaux/viamedis/optique", "/", "/assures/viamedis", "/reseaux/viamedis/optique?lang=en")
            }
            read["api"] = httpx.get(f"{base}/api/v1/incidents?status=open", timeout=5).text
            after = scenario_time()
            assert after is not None and after < RESOLVED, f"the demo ran past the window while reading: {after}"
            return read

        read: dict[str, str] = wait_for(pages, timeout=240, what="19 February, Viamedis optique recovered")
        line = read["/reseaux/viamedis/optique"]
        assert "Réactivation progressive" in text(line) or "Opérationnel" in text(line)  # back, not down
        for path in ("/reseaux/viamedis/optique", "/", "/assures/viamedis"):
            assert DATED in text(read[path]), path
        block = outdated_block(line)
        assert CONSIGNE in unescape(block) and DATED in text(block)
        assert "consigne-current" not in line  # the outage's advice is never shown as today's
        assert DATED_EN in text(read["/reseaux/viamedis/optique?lang=en"])
        assert '"practitioner_consigne_at":"2024-02-08T09:00:00+00:00"' in read["api"].replace(" ", "")
        assert '"practitioner_consigne_standing":"outdated"' in read["api"].replace(" ", "")
    finally:
        code = interrupt(proc)  # Ctrl-C: stops cleanly (killed past 30 s)
        log.close()
    assert code == 0, (tmp_path / "demo.log").read_text()
    assert "Traceback" not in (tmp_path / "demo.log").read_text()
