"""`tpmon demo` end to end, as a user runs it (faster): the February 2024 story as the API tells it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from targets import free_port, interrupt, wait_for

SPEED = 16_000  # the story's 21 days in about 2 minutes
AFFECTED = "Indisponible pour les assurés dont le tiers payant est géré par Viamedis"


def words(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def lines(status: dict[str, Any], network: str) -> dict[str, dict[str, Any]]:
    found = next(n for n in status["networks"] if n["id"] == network)
    return {line["id"]: line for line in found["lines"]}


def test_the_demo_tells_the_february_2024_story(tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "demo.log").open("wb")
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "demo", "--port", str(port), "--speed", str(SPEED)],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/api/v1/status"
    seen: list[tuple[datetime, dict[str, Any]]] = []
    try:

        def sample() -> dict[str, Any] | None:
            if proc.poll() is not None:
                raise AssertionError((tmp_path / "demo.log").read_text())
            status: dict[str, Any] = httpx.get(url, timeout=5).json()
            if status["checked_at"]:
                seen.append((datetime.fromisoformat(status["checked_at"]), status))
            return status

        # within 30 s: Viamedis optique and audio down (probe or declared), pharmacie still works
        def attack_visible() -> bool:
            status = sample()
            viamedis = lines(status, "viamedis") if status and status["checked_at"] else {}
            return bool(viamedis) and all(
                viamedis[line]["state"] == "down" and viamedis[line]["source"] in ("probe", "declared")
                for line in ("optique", "audio")
            )

        wait_for(attack_visible, timeout=30, what="Viamedis optique and audio down")
        assert time.monotonic() - started < 30
        viamedis = lines(seen[-1][1], "viamedis")
        assert viamedis["pharmacie"]["state"] != "down"

        # Kalixia optique depends on Viamedis PEC: never "working" once the probes see PEC down (two failures) —
        # unavailable for the members Viamedis manages (impact partial), said in words on every surface
        def unavailable_for_viamedis_members() -> bool:
            # partial as soon as the probes see one of Viamedis' PEC gateways down, unavailable once all are
            answer = sample()
            if answer is None:
                return False
            kalixia = lines(answer, "kalixia")["optique"]
            return (kalixia["state"], kalixia["affected"]) == ("partial", AFFECTED)

        wait_for(unavailable_for_viamedis_members, timeout=30, what="Kalixia optique partial by its dependency")
        assert lines(seen[-1][1], "kalixia")["optique"]["source"] == "dependency"
        page = words(httpx.get(f"http://127.0.0.1:{port}/reseaux/kalixia/optique", timeout=5).text)
        assert f"{AFFECTED}." in page and "Partiellement indisponible" in page
        assert "Le tiers payant est possible" not in page
        assert (
            "Chez Viamedis, dont dépend ce domaine pour les assurés dont le tiers payant est géré par Viamedis" in page
        )
        assert "Viamedis — services en ligne perturbés" in page  # the upstream's open incident, with its consignes
        assert "aucune prise en charge ne peut être enregistrée" in page
        # the start of the replayed history is no event: a line calm since then says "since at least" that date
        calm = words(httpx.get(f"http://127.0.0.1:{port}/reseaux/almerys/pharmacie", timeout=5).text)
        assert "Depuis au moins le lun. 6 nov. 2023, 00:00." in calm and "Depuis le lun. 6 nov. 2023" not in calm

        # the weeks before "now" were replayed by the engine: their history is there from the start
        droits = f"http://127.0.0.1:{port}/api/v1/history/flow:viamedis/droits"
        replayed = httpx.get(droits, timeout=5).json()
        attack, probing = datetime.fromisoformat("2024-01-29T15:00+01:00"), timedelta(hours=2)
        outage = [t for t in replayed["transitions"] if t["to"] == "down"][-1]  # the first (newest first)
        assert attack <= datetime.fromisoformat(outage["at"]) <= attack + probing  # its first failing probe
        assert replayed["transitions"][-1]["at"] < "2023-11-07"  # the calm weeks since November
        week = wait_for(
            lambda: (
                httpx.get(droits, timeout=5).json()["availability"]["7d"]["ratio"] is not None
                and httpx.get(droits, timeout=5).json()["availability"]["7d"]
            ),
            timeout=90,  # housekeeping rolls up three months on a busy machine
            what="rollups of the replayed history",
        )
        assert week["ratio"] < 0.8  # Visiodroits down since 29/01 15:00

        # then the whole story: sample until Visiodroits, back at 09:00 on 21/02, has been probed up twice (2 h apart)
        def story_told() -> bool:
            status = sample()
            if not status:
                return False
            return datetime.fromisoformat(status["checked_at"]) > datetime.fromisoformat("2024-02-21T18:00+01:00")

        # the line's page tells the same as the API, with what to do: the practitioners' consigne
        page = httpx.get(f"http://127.0.0.1:{port}/reseaux/viamedis/optique", timeout=5).text
        assert "Viamedis — Optique" in page
        assert "Que faire — professionnels de santé" in page

        wait_for(story_told, timeout=240, what="the end of the story")
        # the first page shows Viamedis optique's reactivation, step by step, in order, then "Rétabli"
        home = httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text
        heading = r'<article class="episode[^>]*>\s*<h3[^>]*><a[^>]*>Viamedis — Optique</a>'
        found = re.search(heading + r"(.*?)</article>", home, re.S)
        assert found, home
        episode = found.group(1)
        steps = re.findall(r"Réactivation progressive\u00a0: (\d+)", episode)
        assert len(steps) >= 3, episode
        assert [int(p) for p in steps] == sorted(int(p) for p in steps), steps
        assert "Rétabli" in episode
        # dated as declared (14, 15 and 16 February, 9:00, 9:00, 18:00), not when the app noticed
        steps_at = re.findall(r'<time datetime="[^"]*">([^<]*)</time>', episode)
        for declared in (
            "mer. 14 févr. 2024, 09:00",
            "jeu. 15 févr. 2024, 09:00",
            "ven. 16 févr. 2024, 18:00",
        ):
            assert declared in steps_at, steps_at
        # Almerys' reopening on 13 February is in its timeline
        almerys_heading = r'<article class="episode[^>]*>\s*<h3[^>]*><a[^>]*>Almerys — Optique</a>'
        almerys = re.search(almerys_heading + r"(.*?)</article>", home, re.S)
        assert almerys, home
        assert "mar. 13 févr. 2024, 09:00" in almerys.group(1)
        assert "Réactivation progressive : 50" in words(almerys.group(1))
        # after the recovery, no line is dated from the attack: every since is the start of its current state
        assert "depuis le lun. 29 janv." not in words(home)
        assert "depuis le mer. 31 janv." not in words(home)
        english = httpx.get(f"http://127.0.0.1:{port}/?lang=en", timeout=5).text
        assert '<html lang="en">' in english
        assert "Progressive reactivation" in english
    finally:
        code = interrupt(proc)  # Ctrl-C: stops cleanly (killed past 30 s)
        log.close()
    assert code == 0, (tmp_path / "demo.log").read_text()
    text = (tmp_path / "demo.log").read_text()
    assert "http://127.0.0.1" in text
    assert "Traceback" not in text

    optique = [(at, lines(s, "viamedis")["optique"]) for at, s in seen]
    states = [line["state"] for _, line in optique]
    first_recovering = states.index("recovering")
    last_down = max(i for i, state in enumerate(states) if state == "down")
    assert last_down < first_recovering, "optique recovers only after its outage"
    progresses = [line["progress"] for _, line in optique if line["state"] == "recovering"]
    assert len(set(progresses)) >= 3, progresses
    assert progresses == sorted(progresses), "progress only rises"
    assert states[-1] == "operational"
    assert states.index("operational", first_recovering) > first_recovering

    almerys_optique = [(at, lines(s, "almerys")["optique"]["state"]) for at, s in seen]
    during = [state for at, state in almerys_optique if "2024-02-06" <= at.isoformat() < "2024-02-13"]
    after = [state for at, state in almerys_optique if at.isoformat() >= "2024-02-17"]
    assert during and set(during) == {"down"}, set(during)
    assert after and after[-1] == "operational"
    assert json.dumps(seen[-1][1])  # the last answer is plain JSON
