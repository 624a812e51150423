"""Helpers of the operators' side tests: a config with push checks on two networks, tokens and accounts made as
`tpmon token`/`tpmon user` make them, light Argon2 parameters, and an in-process operators' listener."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from monitor.app import Services, create_apps
from monitor.config import Settings, load_config
from monitor.staff.passwords import Passwords
from monitor.staff.second_factor import new_secret
from monitor.staff.tokens import digest, new_token, public_prefix
from monitor.store import Store
from monitor.store.staff_store import StaffStore, StaffUser
from monitor.store.token_store import create_token

T0 = datetime(2024, 2, 12, 12, 0, tzinfo=UTC)  # a Monday, 13:00 in Paris
LIGHT = Passwords(time_cost=1, memory_cost=8, parallelism=1)  # the tests' Argon2id: same code, cheaper work
PASSWORD = "une phrase de passe solide"

CONFIG = """
admin: {{push_per_minute: {rate}, push_on_public: {public}}}
networks:
  viamedis:
    name: Viamedis
    kind: operateur
    lines: [pharmacie, optique]
    checks:
      - {{name: operateur, flow: pec, kind: push, interval: 1m}}
      - {{name: concentrateur, flow: facturation, kind: push, interval: 1m}}
      - {{name: portail, flow: portail_ps, kind: tcp, host: 127.0.0.1, port: 9}}
  almerys:
    name: Almerys
    kind: operateur
    lines: [pharmacie, optique]
    checks:
      - {{name: operateur, flow: pec, kind: push, interval: 1m}}
"""


class Clock:
    """The app's clock, moved by the test."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def write_config(folder: Path, *, rate: int = 600, public: bool = False) -> Path:
    path = folder / "tpmon.yaml"
    path.write_text(CONFIG.format(rate=rate, public=str(public).lower()), encoding="utf-8")
    return path


def make_token(store: Store, *scopes: str, expires_at: datetime | None = None, label: str = "test") -> str:
    """A token as `tpmon token create` makes it; returns its secret."""
    secret = new_token()
    create_token(
        store,
        digest=digest(secret),
        prefix=public_prefix(secret),
        label=label,
        scopes=list(scopes),
        created_by="cli:test",
        expires_at=expires_at,
    )
    return secret


def make_user(store: Store, name: str, role: str = "admin", networks: tuple[str, ...] = ()) -> StaffUser:
    """An account as `tpmon user add` makes it (second factor still to enrol)."""
    return StaffStore(store).add_user(name, role, networks, LIGHT.hash(PASSWORD), new_secret())  # type: ignore[arg-type]


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@dataclass
class Listener:
    """One listener of an app in process, its store, settings and clock; `services` once started."""

    client: TestClient
    store: Store
    settings: Settings
    clock: Clock

    @property
    def services(self) -> Services:
        found: Services = self.client.app_state["services"]
        return found

    def run(self, coroutine: Any) -> Any:
        """Run a coroutine function of the app on its own loop (e.g. a desk's flush)."""
        return self.client.portal.call(coroutine)  # type: ignore[union-attr]


@contextmanager
def listener(
    tmp_path: Path, *, which: str = "admin", rate: int = 600, public: bool = False, clock: Clock | None = None
) -> Iterator[Listener]:
    """The operators' (or the public) listener alone, over a SQLite file, without probes."""
    settings = load_config(write_config(tmp_path, rate=rate, public=public))
    store = Store.open(f"sqlite:///{tmp_path}/tpmon.db")
    clock = clock or Clock()
    apps = create_apps(settings, store=store, schedule=False, clock=clock, passwords=LIGHT, environ={})
    app = apps.admin if which == "admin" else apps.public
    try:
        with TestClient(app, base_url="http://127.0.0.1:8081") as client:
            yield Listener(client, store, settings, clock)
    finally:
        store.close()
