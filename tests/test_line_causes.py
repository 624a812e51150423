"""A line's trouble in words (web/affected_text.py): the flow at fault and what it means at the counter, what to do,
what a reactivation percentage means — from the taxonomy's texts (DESIGN §1), a network's own, or general words."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.config import Settings, load_config
from monitor.i18n import Lang
from monitor.models import ComponentRef, ComponentStatus, Source, State
from monitor.web.affected_text import Explanation, explain, reactivation

AT = datetime(2024, 2, 14, 8, 0, tzinfo=UTC)
CONFIG = """
networks:
  viamedis:
    name: Viamedis
    kind: operateur
    lines: [pharmacie, optique, hospitalisation]
    flow_texts:
      pec:
        advice: {fr: "faites une facture acquittée ; numéro vert : 0805 62 00 10", en: "issue a receipted invoice"}
  kalixia:
    name: Kalixia
    kind: reseau_de_soins
    flows: [pec]
    lines: [optique]
    line_overrides: {optique: {requires: [pec]}}
    depends_on:
      - network: viamedis
        flow: pec
        scope: {fr: assurés dont le tiers payant est géré par Viamedis, en: members whose tiers payant Viamedis manages}
"""
BARE = """
flows:
  pec: {label: {fr: Prises en charge, en: Prior approvals}}
  facturation: {label: {fr: Facturation, en: Invoicing}}
lines:
  optique: {label: {fr: Optique, en: Optics}, requires: [pec, facturation]}
networks:
  beta: {name: Bêta, kind: operateur, lines: [optique]}
"""


class Board(dict[str, ComponentStatus]):
    """A board as the views read it: statuses by key."""

    def get(self, ref: ComponentRef | str, default: ComponentStatus | None = None) -> ComponentStatus | None:  # type: ignore[override]
        return super().get(ref if isinstance(ref, str) else ref.key, default)

    def set(
        self, key: str, state: State, progress: float = 0.0, source: Source = Source.PROBE, detail: str = ""
    ) -> None:
        ref = ComponentRef.parse(key)
        self[key] = ComponentStatus(ref, state, AT, source, state, progress, detail=detail)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    path = tmp_path_factory.mktemp("causes") / "tpmon.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return load_config(path)


def said(settings: Settings, board: Board, network: str, line: str, lang: Lang = "fr") -> Explanation:
    return explain(settings, board, network, line, board.get(f"line:{network}/{line}"), lang)


def test_an_optional_flow_down_says_what_it_means_and_what_to_do(settings: Settings) -> None:
    board = Board()
    board.set("flow:viamedis/droits", State.DOWN)
    board.set("flow:viamedis/facturation", State.OPERATIONAL)
    board.set("line:viamedis/pharmacie", State.DEGRADED, detail="viamedis/droits")
    fr = said(settings, board, "viamedis", "pharmacie")
    assert fr.cause == "vérification des droits en ligne indisponible"
    assert fr.action == "utilisez l'attestation papier (carte de tiers payant) et facturez normalement"
    en = said(settings, board, "viamedis", "pharmacie", "en")
    assert (en.cause, en.action) == (
        "online rights check unavailable",
        "use the paper certificate (tiers-payant card) and invoice as usual",
    )


def test_a_required_group_down_names_its_flows_and_the_network_own_advice(settings: Settings) -> None:
    board = Board()
    for flow in ("portail_ps", "pec"):
        board.set(f"flow:viamedis/{flow}", State.DOWN)
    board.set("flow:viamedis/facturation", State.OPERATIONAL)
    board.set("line:viamedis/optique", State.DOWN)
    fr = said(settings, board, "viamedis", "optique")
    assert fr.cause == "portail des professionnels fermé\u00a0; prises en charge impossibles"
    assert fr.action == "faites une facture acquittée\u00a0; numéro vert\u00a0: 0805 62 00 10"  # viamedis' own
    assert fr.meaning == ""
    # hospitalisation requires PEC alone (no portal alternative): the taxonomy's words for it
    board.set("line:viamedis/hospitalisation", State.DOWN)
    assert said(settings, board, "viamedis", "hospitalisation").cause == "prises en charge impossibles"


def test_a_flow_partly_down_is_said_so_never_impossible(settings: Settings) -> None:
    board = Board()
    board.set("flow:viamedis/portail_ps", State.DOWN)
    board.set("flow:viamedis/pec", State.PARTIAL, progress=0.5)
    board.set("flow:viamedis/facturation", State.OPERATIONAL)
    board.set("line:viamedis/optique", State.PARTIAL)
    fr = said(settings, board, "viamedis", "optique")
    assert (
        fr.cause
        == "portail des professionnels fermé\u00a0; Prises en charge (PEC)\u00a0: une partie des demandes échoue"
    )


@pytest.mark.parametrize(
    ("share", "fr", "en"),
    [
        (0.5, "environ 1 prise en charge sur 2 aboutit", "about 1 prior approval in 2 goes through"),
        (0.25, "environ 1 prise en charge sur 4 aboutit", "about 1 prior approval in 4 goes through"),
        (0.75, "environ 3 prises en charge sur 4 aboutissent", "about 3 prior approvals in 4 go through"),
        (0.6, "environ 3 prises en charge sur 5 aboutissent", "about 3 prior approvals in 5 go through"),
        (0.02, "très peu de prises en charge aboutissent encore", "very few prior approvals go through yet"),
        (0.97, "la quasi-totalité des prises en charge aboutit", "almost all prior approvals go through"),
    ],
)
def test_a_reactivation_percentage_says_what_it_means_at_the_counter(
    settings: Settings, share: float, fr: str, en: str
) -> None:
    texts = settings.flow_texts("kalixia", "pec")  # the taxonomy's (kalixia has no texts of its own)
    assert reactivation(share, texts, "fr") == (
        f"{fr}\u00a0; en cas de refus, réessayez plus tard ou faites une facture acquittée"
    )
    assert reactivation(share, texts, "en") == f"{en}; if refused, try again later or issue a receipted invoice"


def test_a_line_recovering_gives_the_meaning_of_its_own_percentage(settings: Settings) -> None:
    board = Board()
    board.set("flow:viamedis/portail_ps", State.OPERATIONAL)
    board.set("flow:viamedis/pec", State.PARTIAL, progress=0.25)
    board.set("flow:viamedis/facturation", State.OPERATIONAL)
    board.set("line:viamedis/optique", State.RECOVERING, progress=0.5, source=Source.DECLARED)
    found = said(settings, board, "viamedis", "optique")
    assert found.meaning.startswith("environ 1 prise en charge sur 2 aboutit")  # the line's 50 %, not the flow's
    assert found.cause == "état déclaré par l'exploitation"  # its portal works: so does the group portail_ps|pec
    # declared recovering with every flow fine: the main flow of the line (PEC) gives the words
    board.set("flow:viamedis/pec", State.OPERATIONAL)
    assert said(settings, board, "viamedis", "optique").meaning.startswith("environ 1 prise en charge sur 2")


def test_a_dependency_says_for_whom_and_the_upstream_advice(settings: Settings) -> None:
    board = Board()
    board.set("flow:viamedis/pec", State.RECOVERING, progress=0.75)
    board.set("flow:kalixia/pec", State.OPERATIONAL)
    board.set("line:kalixia/optique", State.RECOVERING, 0.75, Source.DEPENDENCY, "viamedis/pec")
    fr = said(settings, board, "kalixia", "optique")
    assert (
        fr.affected
        == "Réactivation progressive (75\u00a0%) pour les assurés dont le tiers payant est géré par Viamedis"
    )
    assert fr.action.startswith("faites une facture acquittée")  # Viamedis' own advice for its PEC
    assert fr.meaning.startswith("environ 3 prises en charge sur 4 aboutissent")


def test_no_flow_at_fault_is_said_plainly(settings: Settings) -> None:
    board = Board()
    for flow in ("portail_ps", "pec", "facturation", "droits"):
        board.set(f"flow:viamedis/{flow}", State.OPERATIONAL)
    board.set("line:viamedis/optique", State.DOWN, source=Source.DECLARED)
    assert said(settings, board, "viamedis", "optique") == Explanation(
        "", "", "état déclaré par l'exploitation", "", ""
    )
    board.set("line:viamedis/optique", State.MAINTENANCE, source=Source.MAINTENANCE)
    assert said(settings, board, "viamedis", "optique").cause == "maintenance planifiée en cours"
    board.set("line:viamedis/optique", State.OPERATIONAL)
    assert said(settings, board, "viamedis", "optique") == Explanation("", "", "", "", "")


def test_flows_without_texts_are_said_in_general_words(tmp_path: Path) -> None:
    path = tmp_path / "bare.yaml"
    path.write_text(BARE, encoding="utf-8")
    bare = load_config(path)
    board = Board()
    board.set("flow:beta/pec", State.DOWN)
    board.set("flow:beta/facturation", State.OPERATIONAL)
    board.set("line:beta/optique", State.DOWN)
    assert said(bare, board, "beta", "optique") == Explanation("", "", "Prises en charge\u00a0: indisponible", "", "")
    assert said(bare, board, "beta", "optique", "en").cause == "Prior approvals: unavailable"
    board.set("line:beta/optique", State.RECOVERING, progress=0.5)
    board.set("flow:beta/pec", State.RECOVERING, progress=0.5)
    assert said(bare, board, "beta", "optique").meaning == "environ 50\u00a0% des demandes aboutissent"
