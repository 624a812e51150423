"""tpmon: the status monitor of the French tiers-payant networks."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from .config import Settings, load_config
from .errors import ConfigError, MonitorError, NotFound, StoreError
from .models import ComponentRef, ProbeResult, Source, State

if TYPE_CHECKING:
    from .app import create_app

# httpx imports its command-line client (click, rich, pygments: ~100 modules, ~6 MiB resident) whenever rich is
# installed (schemathesis, of the tests, brings it); tpmon never runs it. Marked absent, `import httpx` takes its
# own way for a missing extra. Without effect when httpx was imported first.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

__all__ = [
    "ComponentRef",
    "ConfigError",
    "MonitorError",
    "NotFound",
    "ProbeResult",
    "Settings",
    "Source",
    "State",
    "StoreError",
    "create_app",
    "load_config",
]


def __getattr__(name: str) -> Any:
    if name == "create_app":  # lazily: the web stack is not needed to check a config
        from .app import create_app

        return create_app
    raise AttributeError(f"module 'monitor' has no attribute {name!r}")
