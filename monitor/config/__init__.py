"""The config: YAML with its lines (yaml_source), frozen models (model), the rules across fields (rules), problems
in plain words (problems), loaded by `load_config(path) -> Settings` or `ConfigError` listing every problem.

Layers inside, lowest first: values, taxonomy, yaml_source → model → problems → rules → loader.
"""

from __future__ import annotations

from .loader import load_config, parse_config, read_config
from .model import (
    AdminSettings,
    ChatChannel,
    Check,
    CheckDefaults,
    ClusterSettings,
    Dependency,
    DnsCheck,
    FlowDef,
    FlowTexts,
    HttpCheck,
    HttpConditions,
    LineDef,
    Network,
    Notifications,
    ProbeCheck,
    PushCheck,
    Settings,
    TcpCheck,
    TlsCheck,
    WebSettings,
    dependency_order,
)
from .values import FrozenDict, parse_duration

__all__ = [
    "AdminSettings",
    "ChatChannel",
    "Check",
    "CheckDefaults",
    "ClusterSettings",
    "Dependency",
    "DnsCheck",
    "FlowDef",
    "FlowTexts",
    "FrozenDict",
    "HttpCheck",
    "HttpConditions",
    "LineDef",
    "Network",
    "Notifications",
    "ProbeCheck",
    "PushCheck",
    "Settings",
    "TcpCheck",
    "TlsCheck",
    "WebSettings",
    "dependency_order",
    "load_config",
    "parse_config",
    "parse_duration",
    "read_config",
]
