"""The default taxonomy of flows and service lines, used when a config does not define its own."""

from __future__ import annotations

from typing import Any

# Flows a tiers-payant network runs (DESIGN §1).
DEFAULT_FLOWS: dict[str, dict[str, Any]] = {
    "portail_ps": {"label": {"fr": "Portail professionnels de santé", "en": "Practitioner portal"}},
    "droits": {"label": {"fr": "Vérification des droits", "en": "Rights check"}},
    "pec": {"label": {"fr": "Prises en charge (PEC)", "en": "Prior approvals (PEC)"}},
    "facturation": {"label": {"fr": "Facturation", "en": "Invoicing"}},
    "paiements": {"label": {"fr": "Paiements", "en": "Payments"}},
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
