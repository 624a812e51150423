"""What the publisher keeps from one publication to the next: a network's view is taken again only while nothing it
shows changed — a status of its own, a flow of another network its words name, a first sight, the config — and its
row of the home page only while its view is kept (a kept view or row after a change would show yesterday's)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from markupsafe import Markup

from monitor.config import Settings, load_config
from monitor.i18n import STATE_LABELS
from monitor.models import ComponentRef, ComponentStatus, Source, State, Transition
from monitor.snapshot import Snapshot
from monitor.store import Batch, Store
from monitor.web.board_view import NetworkView, board_view, first_sights
from monitor.web.home_page import matrix_row, steps_html
from monitor.web.page_cache import PageCache
from monitor.web.reactivation_timeline import episodes
from monitor.web.render import Links

CONFIG = """
defaults: {interval: 1s, timeout: 800ms}
networks:
  omega:
    name: Oméga
    kind: operateur
    flows: [pec, facturation]
    lines: [optique, pharmacie]
    line_overrides:
      optique: {requires: [pec, facturation]}
    checks:
      - {name: pec, flow: pec, kind: http, url: "http://127.0.0.1:9/pec"}
      - {name: dre, flow: facturation, kind: http, url: "http://127.0.0.1:9/dre"}
  sigma:
    name: Sigma
    kind: reseau_de_soins
    flows: [pec]
    lines: [optique]
    line_overrides: {optique: {requires: [pec]}}
    depends_on:
      - {network: omega, flow: pec, lines: [optique], scope: {fr: adhérents d'Oméga, en: Omega's members}}
    checks:
      - {name: plateforme, flow: pec, kind: http, url: "http://127.0.0.1:9/sigma"}
"""
T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def settings(tmp_path: Path) -> Settings:
    path = tmp_path / "tpmon.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return load_config(path)


def status(
    key: str, state: State, source: Source = Source.PROBE, detail: str = "", progress: float = 0.0
) -> ComponentStatus:
    return ComponentStatus(ComponentRef.parse(key), state, T0, source, state, progress, detail=detail)


def all_up(config: Settings) -> dict[str, ComponentStatus]:
    keys = ["network:omega", "line:omega/optique", "line:omega/pharmacie", "flow:omega/pec", "flow:omega/facturation"]
    keys += ["check:omega/pec/pec", "check:omega/facturation/dre"]
    keys += ["network:sigma", "line:sigma/optique", "flow:sigma/pec", "check:sigma/pec/plateforme"]
    return {key: status(key, State.OPERATIONAL) for key in keys}


def snapshot(config: Settings, statuses: dict[str, ComponentStatus], version: int) -> Snapshot:
    return Snapshot(config, T0, dict(statuses), checked_at=T0, board_version=version)


def networks(
    view_of: Snapshot, config: Settings, first_seen: dict[str, datetime] | None = None
) -> dict[str, NetworkView]:
    return {network.id: network for network in board_view(config, view_of, "fr", first_seen).networks}


def test_a_network_none_of_whose_statuses_changed_keeps_its_view_the_changed_one_is_built_again(tmp_path: Path) -> None:
    config = settings(tmp_path)
    statuses = all_up(config)
    before = networks(snapshot(config, statuses, 1), config)
    statuses["flow:omega/facturation"] = status("flow:omega/facturation", State.DOWN)
    statuses["line:omega/optique"] = status("line:omega/optique", State.DOWN)
    after = networks(snapshot(config, statuses, 2), config)
    assert after["sigma"] is before["sigma"]  # nothing of sigma's changed: taken again
    assert after["omega"] is not before["omega"]
    line = after["omega"].lines["optique"]
    assert line.state is State.DOWN and line.cause == "envoi des factures impossible"  # the current state, and why


def test_a_change_of_another_networks_flow_its_words_name_builds_its_view_again(tmp_path: Path) -> None:
    """sigma's optique is partial because of omega's PEC (none of sigma's own statuses changes when omega's PEC goes
    from down to recovering): its words say the upstream's state, so its view is built again."""
    config = settings(tmp_path)
    statuses = all_up(config)
    statuses["flow:omega/pec"] = status("flow:omega/pec", State.DOWN)
    statuses["line:sigma/optique"] = status("line:sigma/optique", State.PARTIAL, Source.DEPENDENCY, "omega/pec")
    down = networks(snapshot(config, statuses, 1), config)
    assert down["sigma"].lines["optique"].affected == "Indisponible pour les adhérents d'Oméga"
    statuses["flow:omega/pec"] = status("flow:omega/pec", State.RECOVERING, progress=0.5)
    recovering = networks(snapshot(config, statuses, 2), config)
    assert recovering["sigma"] is not down["sigma"]
    affected = recovering["sigma"].lines["optique"].affected
    assert (
        affected.startswith(STATE_LABELS[State.RECOVERING]["fr"] + " (50\u00a0%)") and "adhérents d'Oméga" in affected
    )


def test_a_new_first_sight_or_a_new_config_builds_the_view_again(tmp_path: Path) -> None:
    config = settings(tmp_path)
    statuses = all_up(config)
    shown = snapshot(config, statuses, 1)
    floor = networks(shown, config, {"line:omega/optique": T0})["omega"]
    assert floor.lines["optique"].since_floor  # nothing known before its since
    earlier = {"line:omega/optique": T0 - timedelta(days=3)}
    known = networks(snapshot(config, statuses, 2), config, earlier)["omega"]
    assert known is not floor and not known.lines["optique"].since_floor
    reloaded = settings(tmp_path)  # the same file read again: another config object
    assert networks(snapshot(reloaded, statuses, 3), reloaded, earlier)["omega"] is not known
    # and without first sights (the JSON documents), a view of its own: never one saying "since at least"
    plain = networks(snapshot(reloaded, statuses, 4), reloaded)["omega"]
    assert plain is not known and not plain.lines["optique"].since_floor


def test_a_status_replaced_by_an_equal_one_is_only_a_missed_reuse(tmp_path: Path) -> None:
    config = settings(tmp_path)
    statuses = all_up(config)
    before = networks(snapshot(config, statuses, 1), config)
    statuses["check:omega/pec/pec"] = replace(statuses["check:omega/pec/pec"])  # same values, another object
    after = networks(snapshot(config, statuses, 2), config)
    assert after["omega"] is not before["omega"] and after["omega"] == before["omega"]


def test_a_networks_row_of_the_home_page_is_rendered_again_when_its_view_changes_and_only_then(
    tmp_path: Path,
) -> None:
    config = settings(tmp_path)
    statuses = all_up(config)
    pages = PageCache(lambda: 0)
    links = Links("fr", exported=True)
    shown = ("optique", "pharmacie")

    def rows(version: int, now: datetime = T0) -> dict[str, Markup]:
        views = networks(snapshot(config, statuses, version), config)
        return {name: matrix_row(pages, view, shown, "fr", links, now) for name, view in views.items()}

    before = rows(1)
    assert STATE_LABELS[State.OPERATIONAL]["fr"] in before["omega"]
    statuses["line:omega/optique"] = status("line:omega/optique", State.DOWN)
    after = rows(2)
    assert after["sigma"] is before["sigma"]  # its view was kept: its row too
    assert STATE_LABELS[State.DOWN]["fr"] in after["omega"] and after["omega"] != before["omega"]
    live = matrix_row(pages, networks(snapshot(config, statuses, 2), config)["omega"], shown, "fr", Links("fr"), T0)
    assert 'href="/reseaux/omega/optique"' in live and 'href="/reseaux/omega/optique/"' in after["omega"]
    next_year = rows(3, T0.replace(year=2027))  # its dates say their year now: rendered again
    assert next_year["sigma"] is not before["sigma"]
    assert "2026" in next_year["omega"] and "2026" not in after["omega"]


def test_first_sights_are_the_same_object_until_a_component_is_first_seen(tmp_path: Path) -> None:
    """Pages compare first sights by identity (the board's view is kept under them): the same dict while nothing is
    seen for the first time, a new one with the new first sight, and a view built from the old one is not kept."""
    config = settings(tmp_path)
    store = Store.open(f"sqlite:///{tmp_path}/sights.db")
    try:
        pec = ComponentRef.parse("check:omega/pec/pec")
        store.write(Batch(transitions=[Transition(pec, State.UNKNOWN, State.OPERATIONAL, T0, T0, Source.PROBE)]))
        first = first_sights(store, config)
        assert first == {pec.key: T0}
        assert first_sights(store, config) is first  # nothing new: the very same answer
        with pytest.raises(TypeError):  # read-only: kept by the views without a copy, nobody can change it
            first[pec.key] = T0 + timedelta(days=1)  # type: ignore[index]
        shown = snapshot(config, all_up(config), 1)
        view = board_view(config, shown, "fr", first)
        assert board_view(config, shown, "fr", first_sights(store, config)) is view

        later = T0 + timedelta(minutes=5)
        dre = ComponentRef.parse("check:omega/facturation/dre")
        store.write(Batch(transitions=[Transition(dre, State.UNKNOWN, State.DOWN, later, later, Source.PROBE)]))
        second = first_sights(store, config)
        assert second is not first and second == {pec.key: T0, dre.key: later}
        assert first == {pec.key: T0}  # an answer is never changed: pages holding it keep what they read
        assert board_view(config, shown, "fr", second) is not view
        assert first_sights(store, config, store_up=False) == {}
    finally:
        store.close()


def test_an_outages_steps_are_rendered_once_and_again_when_it_has_a_new_step_or_ends() -> None:
    """The first page shows every line's outages of 30 days, re-read after each change: their steps are kept by what
    they say — a step more (a reactivation), or the end of the outage, renders them again."""
    pages = PageCache(lambda: 0)
    down = Transition(ComponentRef.parse("line:omega/optique"), State.OPERATIONAL, State.DOWN, T0, T0, Source.PROBE)
    (going,) = episodes([down], T0)
    first = steps_html(pages, going, "fr")
    assert "Not restored yet" not in first and "Pas encore rétabli" in first
    (again,) = episodes([down], T0)  # read again after another change: new objects, the same words
    assert steps_html(pages, again, "fr") is first
    assert steps_html(pages, again, "en") != first and "Not restored yet" in steps_html(pages, again, "en")

    later = T0 + timedelta(hours=2)
    half = Transition(down.ref, State.DOWN, State.RECOVERING, later, later, Source.DECLARED, progress=0.5)
    (reactivating,) = episodes([down, half], T0)
    second = steps_html(pages, reactivating, "fr")
    assert second != first and "50" in second and "Pas encore rétabli" in second
    back = Transition(down.ref, State.RECOVERING, State.OPERATIONAL, later, later, Source.PROBE)
    (ended,) = episodes([down, half, back], T0)
    third = steps_html(pages, ended, "fr")
    assert "Pas encore rétabli" not in third and "Rétabli" in third
