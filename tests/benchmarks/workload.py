"""The checks both contenders run: N http(s) checks spread over networks and flows, each its own farm path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

FLOWS = ("portail_ps", "droits", "pec", "facturation", "paiements")
LINES = ("pharmacie", "optique", "dentaire", "hospitalisation")
JITTER = 0.1  # tpmon's default share of each interval


@dataclass(frozen=True)
class Target:
    network: str
    flow: str
    name: str

    @property
    def path(self) -> str:
        return f"/{self.network}/{self.flow}/{self.name}"


def plan(count: int, networks: int) -> list[Target]:
    """`count` checks over `networks` networks (as evenly as can be), cycling through the flows."""
    found: list[Target] = []
    for n in range(networks):
        share = count // networks + (1 if n < count % networks else 0)
        found += [Target(f"net{n:02d}", FLOWS[i % len(FLOWS)], f"c{len(found) + i:05d}") for i in range(share)]
    return found


def timeout_for(interval: float) -> float:
    """The probe timeout: the config wants timeout < interval (and degraded_after < timeout)."""
    return min(5.0, interval / 2)


def intended_probes(checks: int, interval: float, window: float) -> float:
    """Probes due in a window once every check's phase is uniform over its interval (after the warm-up)."""
    return checks * window / interval


def tpmon_config(targets: list[Target], interval: float, base: str, ca_file: Path | None) -> str:
    """tpmon's YAML for `targets` on `base`: the portal wants "Connexion", `pec` a JSON status and header."""
    timeout = timeout_for(interval)
    out = [
        "stabilization: 30m",
        f"jitter: {JITTER:g}",
        f"defaults: {{interval: {interval:g}s, timeout: {timeout:g}s, failure_threshold: 3, success_threshold: 2}}",
        "networks:",
    ]
    extra = f', ca_file: "{ca_file}"' if ca_file is not None else ""
    network = None
    for target in targets:
        if target.network != network:
            network = target.network
            number = int(network[3:])
            out += [
                f"  {network}:",
                f"    name: Network {number:02d}",
                f"    kind: {'operateur' if number % 2 == 0 else 'reseau_de_soins'}",
                f"    lines: [{', '.join(LINES)}]",
                "    checks:",
            ]
        if target.flow == "portail_ps":
            cond = f', degraded_after: {timeout / 2:g}s, conditions: {{status: [200], body_contains: "Connexion"}}'
        elif target.flow == "pec":
            cond = (
                ", conditions: {status: ['2xx'], json: [{path: $.status, equals: UP}],"
                " headers: [{name: Content-Type, equals: application/json}]}"
            )
        else:
            cond = ""
        url = base + target.path
        out.append(f'      - {{name: {target.name}, flow: {target.flow}, kind: http, url: "{url}"{extra}{cond}}}')
    return "\n".join(out) + "\n"
