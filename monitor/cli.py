"""The `tpmon` command: serve, check-config, probe, status, reload, db upgrade."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .config import Settings, load_config
from .errors import ConfigError, MonitorError

DEFAULT_CONFIG = "config/example.yaml"


def _config_path(args: argparse.Namespace) -> str:
    return str(getattr(args, "config", None) or os.environ.get("TPMON_CONFIG") or DEFAULT_CONFIG)


def _load(path: str) -> Settings:
    return load_config(path)


def cmd_check_config(args: argparse.Namespace) -> int:
    path = args.file or _config_path(args)
    settings = _load(path)
    checks = len(settings.checks())
    print(f"{path}: OK — {len(settings.networks)} networks, {checks} checks")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tpmon", description="Status monitor of the French tiers-payant networks.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    check = sub.add_parser("check-config", help="validate a config file and list every problem")
    check.add_argument("file", nargs="?", help="the YAML file (default: --config, $TPMON_CONFIG or config/example.yaml)")
    check.add_argument("--config", help=argparse.SUPPRESS)
    check.set_defaults(func=cmd_check_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        print(f"tpmon: {len(exc.problems)} problem(s) in the config; nothing was started", file=sys.stderr)
        return 2
    except MonitorError as exc:
        print(f"tpmon: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
