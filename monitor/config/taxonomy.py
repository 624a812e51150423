"""The default taxonomy of flows and service lines, used when a config does not define its own."""

from __future__ import annotations

from typing import Any

# Flows a tiers-payant network runs, with what their failure means at the counter and what a practitioner does
# meanwhile (DESIGN §1's table; a network may override any text with `flow_texts:`). `unit`/`units` name one
# request of the flow, for what a reactivation percentage means ("environ 1 prise en charge sur 2 aboutit"), and
# `when_refused` what to do then. Sources: S = reported in February 2024, A = our reasoning (DESIGN §1).
DEFAULT_FLOWS: dict[str, dict[str, Any]] = {
    "portail_ps": {
        "label": {"fr": "Portail professionnels de santé", "en": "Practitioner portal"},
        "when_down": {"fr": "portail des professionnels fermé", "en": "practitioner portal closed"},
        "advice": {  # A
            "fr": "passez par votre logiciel (EDI) si possible ; sinon, mettez le dossier en attente"
            " ou faites une facture acquittée",
            "en": "use your practice software (EDI) if you can; otherwise set the file aside or issue a receipted"
            " invoice",
        },
        "unit": {"fr": "connexion", "en": "login"},
        "units": {"fr": "connexions", "en": "logins"},
        "when_refused": {
            "fr": "en cas d'échec, réessayez plus tard ou passez par votre logiciel (EDI)",
            "en": "if it fails, try again later or use your practice software (EDI)",
        },
    },
    "droits": {
        "label": {"fr": "Vérification des droits", "en": "Rights check"},
        "when_down": {"fr": "vérification des droits en ligne indisponible", "en": "online rights check unavailable"},
        "advice": {  # S: FSPF, 02/02/2024
            "fr": "utilisez l'attestation papier (carte de tiers payant) et facturez normalement",
            "en": "use the paper certificate (tiers-payant card) and invoice as usual",
        },
        "unit": {"fr": "vérification", "en": "check"},
        "units": {"fr": "vérifications", "en": "checks"},
        "when_refused": {
            "fr": "en cas d'échec, utilisez l'attestation papier",
            "en": "if it fails, use the paper certificate",
        },
    },
    "pec": {
        "label": {"fr": "Prises en charge (PEC)", "en": "Prior approvals (PEC)"},
        "when_down": {"fr": "prises en charge impossibles", "en": "no prior approval possible"},
        "advice": {  # S: 62 % of opticians set files aside; the facture acquittée
            "fr": "mettez le dossier en attente ou faites une facture acquittée : l'assuré avance les frais et se"
            " fait rembourser par sa complémentaire",
            "en": "set the file aside or issue a receipted invoice: the member pays upfront and claims from their"
            " insurer",
        },
        "unit": {"fr": "prise en charge", "en": "prior approval"},
        "units": {"fr": "prises en charge", "en": "prior approvals"},
        "when_refused": {  # A
            "fr": "en cas de refus, réessayez plus tard ou faites une facture acquittée",
            "en": "if refused, try again later or issue a receipted invoice",
        },
    },
    "facturation": {
        "label": {"fr": "Facturation", "en": "Invoicing"},
        "when_down": {"fr": "envoi des factures impossible", "en": "invoices cannot be sent"},
        "advice": {  # A
            "fr": "conservez vos factures : elles seront transmises au retour du service",
            "en": "keep your invoices: they will be sent when the service is back",
        },
        "unit": {"fr": "facture", "en": "invoice"},
        "units": {"fr": "factures", "en": "invoices"},
        "when_refused": {
            "fr": "en cas de rejet, conservez la facture et renvoyez-la plus tard",
            "en": "if rejected, keep the invoice and send it again later",
        },
    },
    "paiements": {
        "label": {"fr": "Paiements", "en": "Payments"},
        "when_down": {"fr": "virements en retard", "en": "payments delayed"},
        "advice": {  # S: Viamedis from 29/01; A for the advice
            "fr": "rien à faire au comptoir : les virements seront rattrapés",
            "en": "nothing to do at the counter: payments will catch up",
        },
        "unit": {"fr": "virement", "en": "payment"},
        "units": {"fr": "virements", "en": "payments"},
        "when_refused": {"fr": "les virements en retard seront rattrapés", "en": "late payments will catch up"},
    },
}

# Each line requires flows ("a|b": either one is enough); optional flows only degrade it when down.
_DISPENSING = {"requires": ["facturation"], "optional": ["droits"]}
_WITH_PEC = {"requires": ["portail_ps|pec", "facturation"], "optional": ["droits"]}

DEFAULT_LINES: dict[str, dict[str, Any]] = {
    "pharmacie": {"label": {"fr": "Pharmacie", "en": "Pharmacy"}, **_DISPENSING},
    "biologie": {"label": {"fr": "Biologie", "en": "Laboratory"}, **_DISPENSING},
    "radiologie": {"label": {"fr": "Radiologie", "en": "Radiology"}, **_DISPENSING},
    "medecins": {"label": {"fr": "Médecins", "en": "Doctors"}, **_DISPENSING},
    "auxiliaires": {"label": {"fr": "Auxiliaires médicaux", "en": "Allied health"}, **_DISPENSING},
    "transport": {"label": {"fr": "Transport sanitaire", "en": "Patient transport"}, **_DISPENSING},
    "optique": {"label": {"fr": "Optique", "en": "Optics"}, **_WITH_PEC},
    "audio": {"label": {"fr": "Audioprothèse", "en": "Hearing aids"}, **_WITH_PEC},
    "dentaire": {"label": {"fr": "Dentaire", "en": "Dental"}, **_WITH_PEC},
    "hospitalisation": {
        "label": {"fr": "Hospitalisation", "en": "Hospital stays"},
        "requires": ["pec", "facturation"],
        "optional": ["droits"],
    },
    "centres_sante": {"label": {"fr": "Centres de santé", "en": "Health centres"}, **_DISPENSING},
}

# The README's table of the default taxonomy is generated from the two tables above, between these markers.
README_START = "<!-- taxonomy: generated by `python -m monitor.config --write README.md` -->"
README_END = "<!-- /taxonomy -->"


def _flow(name: str) -> str:
    return f"{DEFAULT_FLOWS[name]['label']['fr']} (`{name}`)"


def readme_table() -> str:
    """The default lines with the flows each requires (every group needed; `a|b`: either one) and its optional
    flows, as the README's Markdown table (French)."""
    rows = [
        "| domaine | flux requis (chacun nécessaire) | flux facultatifs (leur panne rend le domaine Perturbé) |",
        "|---|---|---|",
    ]
    for name, line in DEFAULT_LINES.items():
        required = " ; ".join(" **ou** ".join(_flow(f) for f in group.split("|")) for group in line["requires"])
        optional = " ; ".join(_flow(f) for f in line["optional"]) or "—"
        rows.append(f"| {line['label']['fr']} (`{name}`) | {required} | {optional} |")
    return "\n".join(rows)


def with_readme_table(text: str) -> str:
    """`text` (the README) with the block between the markers replaced by the current table."""
    start, end = text.index(README_START) + len(README_START), text.index(README_END)
    return f"{text[:start]}\n{readme_table()}\n{text[end:]}"
