"""The `tpmon` command: serve, check-config, probe, status, reload, export, db upgrade."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .config import Settings, load_config, read_config
from .errors import ConfigError, ConfigProblem, MonitorError, NotFound, StoreError
from .i18n import literal, said
from .logs import setup_logging
from .opscli import OneLineParser, add_ops_commands
from .opscli.push_command import register as register_push
from .opscli.texts import _, cli_lang, install_argparse_texts

DEFAULT_CONFIG = "config/example.yaml"
DEFAULT_PID_FILE = "var/tpmon.pid"
DEFAULT_EXPORT_URL = "http://127.0.0.1:8080"


def port_number(text: str) -> int:
    """A TCP port to listen on, 1–65535 (a larger number would silently listen on another port)."""
    try:
        port = int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            _("{text} is not a port number (1 to 65535)").format(text=repr(text))
        ) from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(_("{port} is not between 1 and 65535").format(port=port))
    return port


def location_name(text: str) -> str:
    """A location: a slug (lyon, paris-2), as the config's cluster.location."""
    from .config.values import SLUG

    if not re.fullmatch(SLUG, text):
        not_location = _("{text} is not a location name (lowercase letters, digits, - and _)")
        raise argparse.ArgumentTypeError(not_location.format(text=repr(text)))
    return text


def probe_workers(text: str) -> int:
    """`--probe-workers`: 1–64 or `auto`."""
    from .probe_pool import worker_count

    try:
        return worker_count(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            _("{text} is not a number of workers (1 to 64, or auto)").format(text=repr(text[:40]))
        ) from None


def _config_path(args: argparse.Namespace) -> str:
    return str(getattr(args, "config", None) or os.environ.get("TPMON_CONFIG") or DEFAULT_CONFIG)


def _masked(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL: show only its scheme
        return url.split(":", 1)[0] + ":…"


def _database_url() -> str:
    from .store import default_url

    return default_url()


def _warning(problem: ConfigProblem) -> str:
    """`file:line: field: warning: message`."""
    where = f"{problem.file}:{problem.line}: " if problem.file and problem.line else ""
    warning = _("warning")
    return f"{where}{problem.path}: {warning}: {problem.message_in(cli_lang())}"


def cmd_check_config(args: argparse.Namespace) -> int:
    path = args.file or _config_path(args)
    settings, warnings = read_config(path)
    if warnings and args.strict:
        raise ConfigError(warnings)
    for problem in warnings:
        print(_warning(problem), file=sys.stderr)
    shown = _(", {count} warning(s)").format(count=len(warnings)) if warnings else ""
    summary = _("{path}: OK — {networks} networks, {checks} checks{warnings}")
    print(summary.format(path=path, networks=len(settings.networks), checks=len(settings.checks()), warnings=shown))
    return 0


def admin_address(args: argparse.Namespace, settings: Settings) -> tuple[str, int] | None:
    """Where the operators' listener listens (flags over the config's `admin:`), or None when it is off."""
    if args.no_admin or not settings.admin.enabled:
        return None
    host, port = args.admin_host or settings.admin.host, args.admin_port or settings.admin.port
    if (host, port) == (args.host, args.port):
        message = _("--admin-port: the operators' listener cannot share the public address {address}")
        raise MonitorError(message.format(address=f"{host}:{port}"))
    return host, port


def cmd_serve(args: argparse.Namespace) -> int:
    from sqlalchemy.engine import make_url

    from .app import check_port, check_source
    from .cluster.single_instance import single_instance

    path = _config_path(args)
    settings = load_config(path)
    check_port(args.host, args.port)
    check_source(settings, args.location)
    admin = admin_address(args, settings)
    if admin is not None:
        check_port(*admin, options=("--admin-host", "--admin-port"))
    _check_notification_secrets(settings)
    _check_publish_dir(settings)
    setup_logging(args.log_level, args.log_format)
    url = _database_url()
    if args.probe_workers > 1 and make_url(url).get_backend_name() == "postgresql":  # shares not composed yet
        raise MonitorError(
            said(
                "--probe-workers: more than 1 is not supported on PostgreSQL yet (its instances share the checks); "
                "use --probe-workers 1, with more instances for more cores"
            )
        )
    with single_instance(url):  # SQLite: one serve per file, refused before the database or its journal is touched
        return _serve(args, settings, path, admin, url)


def _serve(args: argparse.Namespace, settings: Settings, path: str, admin: tuple[str, int] | None, url: str) -> int:
    from .app import create_apps
    from .listener_limits import budget_file_descriptors
    from .listeners import admin_server, public_server, serve_listeners
    from .store import Store, start_journal

    store = Store.open(url)
    try:  # what a previous run could not write is written first, before the board reads the store
        journal = start_journal(store, url)
        # after the store is open: its files are counted
        public_limits, admin_limits = budget_file_descriptors(settings, admin=admin is not None)
    except (StoreError, MonitorError):
        store.close()
        raise
    listener_log = logging.getLogger("tpmon.listener")
    listener_log.info("public listener: %s", public_limits)
    if admin_limits is not None:
        listener_log.info("operators' listener: %s", admin_limits)
    pid_file = Path(args.pid_file)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(str(os.getpid()), encoding="utf-8")
    apps = create_apps(
        settings,
        store=store,
        config_path=path,
        handle_sighup=True,
        reload_status=pid_file.with_suffix(".reload.json"),
        journal=journal,
        location=args.location,
        probe_workers=args.probe_workers,
        worker_logs=(args.log_level, args.log_format),
        freeze_heap=True,
    )
    public = public_server(apps.public, args.host, args.port, public_limits)
    behind = admin_server(apps.admin, *admin, admin_limits) if admin is not None and admin_limits is not None else None
    try:
        with asyncio.Runner(loop_factory=public.config.get_loop_factory()) as runner:
            runner.run(serve_listeners(public, behind))
    finally:
        store.close()
        if journal is not None:
            journal.close()
        pid_file.unlink(missing_ok=True)
    return 0 if public.started else 1


def _check_publish_dir(settings: Settings) -> None:
    """MonitorError in one line, before anything starts, if `web.publish_dir` is not a folder tpmon may fill."""
    if settings.web.publish_dir is None:
        return
    from .web.static_export import check_target

    try:
        check_target(Path(settings.web.publish_dir))
    except MonitorError as exc:
        raise MonitorError(said("web.publish_dir: {problem}", problem=exc.said or literal(str(exc)))) from None


def _check_notification_secrets(settings: Settings) -> None:
    """MonitorError in one line, before anything starts, if `notifications:` lacks its secrets."""
    if settings.notifications is None:
        return
    from .delivery.smtp_sender import smtp_settings
    from .notify.tokens import load_secret

    load_secret(os.environ)
    if settings.notifications.subscriptions:
        smtp_settings(os.environ)


def cmd_demo(args: argparse.Namespace) -> int:
    needed = ["cryptography"] + (["aiosmtpd"] if args.smtp_sink is not None else [])
    missing = [name for name in needed if not _importable(name)]
    if missing:
        needs = _("the demo needs {modules}: pip install 'tpmon[demo]' (or bash .ci/setup.sh)")
        raise MonitorError(needs.format(modules=", ".join(missing)))
    from .demo.run import DemoOptions, run_demo

    if args.speed is not None and not 1 <= args.speed <= 1_000_000:
        raise MonitorError(_("--speed must be between 1 and 1000000 (scenario seconds per real second)"))
    from .app import check_port

    check_port(args.host, args.port)
    setup_logging(args.log_level, "text")
    options = DemoOptions(host=args.host, port=args.port, speed=args.speed, smtp_sink=args.smtp_sink)
    # `serve` gets uvloop from uvicorn's Server.run (loop="auto"); the demo runs its own loop: the same one
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(run_demo(options))
    return 0


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (as uvicorn's loop="auto" picks), else asyncio's default."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def cmd_reload(args: argparse.Namespace) -> int:
    path = _config_path(args)
    settings = load_config(path)  # refuse before signalling: the running config is kept
    pid_file = Path(args.pid_file)
    try:
        pid = int(pid_file.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        missing = _("no running tpmon found ({file} is missing or unreadable)")
        raise MonitorError(missing.format(file=pid_file)) from None
    status_file = pid_file.with_suffix(".reload.json")
    before = status_file.stat().st_mtime_ns if status_file.exists() else 0
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        stale = _("no running tpmon with pid {pid} ({file} is stale)")
        raise MonitorError(stale.format(pid=pid, file=pid_file)) from None
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        if status_file.exists() and status_file.stat().st_mtime_ns != before:
            outcome = json.loads(status_file.read_text(encoding="utf-8"))
            verdict = _("reloaded") if outcome["ok"] else _("reload refused")
            said = outcome.get("texts") or {}  # the server's words in each language
            print(_("{verdict}: {message}").format(verdict=verdict, message=said.get(cli_lang(), outcome["message"])))
            return 0 if outcome["ok"] else 2
        time.sleep(0.05)
    silent = _("signalled pid {pid} with {checks} checks; no answer within {wait} s")
    print(silent.format(pid=pid, checks=len(settings.checks()), wait=f"{args.wait:g}"), file=sys.stderr)
    return 1


def cmd_status(args: argparse.Namespace) -> int:
    from .i18n import format_short
    from .store import Store

    settings = load_config(_config_path(args))
    store = Store.open(_database_url())
    try:
        statuses = store.load_statuses()
    finally:
        store.close()
    rows = []
    for name, network in settings.networks.items():
        for key in [f"network:{name}", *(f"line:{name}/{line}" for line in network.lines)]:
            status = statuses.get(key)
            rows.append(
                {
                    "component": key,
                    "state": status.state.value if status else "unknown",
                    "since": status.since.isoformat() if status and status.since else None,
                    "source": status.source.value if status else "none",
                    "progress": status.progress if status else 0.0,
                    "since_paris": format_short(status.since if status else None),
                }
            )
    if args.json:
        print(json.dumps([{k: v for k, v in r.items() if k != "since_paris"} for r in rows], indent=2))
        return 0
    from .i18n import SOURCE_LABELS, STATE_ICONS, STATE_LABELS
    from .models import Source, State

    lang = cli_lang()  # the states and sources in words, as the site says them; the keys stay identifiers

    def state(value: object) -> str:
        found = State(str(value))
        return f"{STATE_ICONS[found]} {STATE_LABELS[found][lang]}"

    def source(value: object) -> str:
        return SOURCE_LABELS[Source(str(value))][lang]

    shown = [(str(r["component"]), state(r["state"]), str(r["since_paris"]), source(r["source"])) for r in rows]
    heads = _("COMPONENT"), _("STATE"), _("SINCE (Paris)"), _("SOURCE")
    widths = [max([len(heads[i]), *(len(row[i]) for row in shown)]) for i in range(3)]
    print(f"{heads[0]:<{widths[0]}}  {heads[1]:<{widths[1]}}  {heads[2]:<{widths[2]}}  {heads[3]}")
    for row in shown:
        print(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}")
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from .probes.once import probe_once

    settings = load_config(_config_path(args))
    network, _sep, rest = args.target.partition("/")
    flow, _sep, check_name = rest.partition("/")
    found = [c for n, c in settings.checks() if n == network and c.flow == flow and c.name == check_name]
    if not found:
        known = ", ".join(f"{n}/{c.flow}/{c.name}" for n, c in settings.checks()) or _("none")
        unknown = _("no check {target} in the config (known: {known})")
        raise NotFound(unknown.format(target=repr(args.target), known=known))
    result = asyncio.run(probe_once(network, found[0], settings))
    if args.json:
        print(json.dumps(result_json(result), indent=2))
    else:
        print(describe_result(result))
    return 0 if result.success else 1


def result_json(result: object) -> dict[str, object]:
    from .models import ProbeResult

    assert isinstance(result, ProbeResult)
    return {
        "check": result.check.key,
        "started_at": result.started_at.isoformat(),
        "duration_s": round(result.duration_s, 6),
        "success": result.success,
        "slow": result.slow,
        "reason": result.reason.value if result.reason else None,
        "detail": result.detail,
        "status_code": result.status_code,
        "phases": {k: round(v, 6) for k, v in result.phases.items()},
        "cert_expiry": result.cert_expiry.isoformat() if result.cert_expiry else None,
    }


def describe_result(result: object) -> str:
    from .models import ProbeResult

    assert isinstance(result, ProbeResult)
    verdict = "OK" + (_(" (slow)") if result.slow else "") if result.success else _("FAILED") + f" ({result.reason})"
    took = _("{check}: {verdict} in {ms} ms")
    lines = [took.format(check=result.check.key, verdict=verdict, ms=f"{result.duration_s * 1000:.1f}")]
    status_label, detail_label = _("HTTP status"), _("detail")
    if result.status_code is not None:
        lines.append(f"  {status_label:<15} {result.status_code}")
    for phase, seconds in result.phases.items():
        lines.append(f"  {phase:<15} {seconds * 1000:8.1f} ms")
    if result.cert_expiry:
        lines.append("  " + _("certificate expires {when} UTC").format(when=f"{result.cert_expiry:%Y-%m-%d %H:%M}"))
    if result.detail:
        lines.append(f"  {detail_label:<15} {result.detail}")
    return "\n".join(lines)


def cmd_export(args: argparse.Namespace) -> int:
    from .app import create_app
    from .store import Store
    from .web.static_export import check_target, export_site, origin_of

    path = _config_path(args)
    settings = load_config(path)
    base_url = args.base_url or settings.web.public_url or DEFAULT_EXPORT_URL
    origin_of(base_url)
    check_target(Path(args.dir))  # refuse a bad folder before touching the store
    try:
        store = Store.open(_database_url())
    except StoreError as exc:
        raise MonitorError(said("export: {problem}", problem=exc.said or literal(str(exc)))) from None
    try:
        app = create_app(settings, store=store, schedule=False, config_path=path)
        report = asyncio.run(export_site(app, Path(args.dir), base_url=base_url))
    finally:
        store.close()
    print(report.text(cli_lang()))
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from .store import migrate

    url = _database_url()
    migrate(url)
    print(_("database {url} is at the latest schema").format(url=_masked(url)))
    return 0


def _wait_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(_("{text} is not a number of seconds").format(text=repr(text[:40]))) from None
    if not 0 < seconds <= 600:  # NaN and infinities too
        raise argparse.ArgumentTypeError(_("{text} is not between 0 and 600 seconds").format(text=repr(text[:40])))
    return seconds


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="tpmon",
        description=_("Status monitor of the French tiers-payant networks."),
        epilog=_(
            "Config: --config or $TPMON_CONFIG (default config/example.yaml). "
            "Database: $TPMON_DATABASE_URL (default sqlite:///./var/tpmon.db). "
            "Language: French, or English with an English locale or TPMON_LANG=en."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=OneLineParser)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument(
            "--config", metavar="FILE", help=_("the YAML config (default: $TPMON_CONFIG or config/example.yaml)")
        )
        return p

    serve = command("serve", _("run the probes, the status engine and the web server"))
    serve.add_argument("--host", default="127.0.0.1", help=_("address to listen on (default 127.0.0.1)"))
    serve.add_argument("--port", type=port_number, default=8080, help=_("port to listen on, 1–65535 (default 8080)"))
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--log-format", default="text", choices=["text", "json"], help=_("json: one object per line"))
    serve.add_argument(
        "--pid-file",
        default=DEFAULT_PID_FILE,
        help=_("where to write the pid (default {path})").format(path=DEFAULT_PID_FILE),
    )
    serve.add_argument(
        "--admin-host",
        help=_("address of the operators' listener: write API, pushes, sign-in (default: config admin.host)"),
    )
    serve.add_argument(
        "--admin-port", type=int, help=_("port of the operators' listener (default: config admin.port, 8081)")
    )
    serve.add_argument("--no-admin", action="store_true", help=_("run without the operators' listener"))
    serve.add_argument(
        "--location",
        type=location_name,
        help=_(
            "where this instance probes from; the instances of one location on one PostgreSQL share its checks "
            "(default: config cluster.location, 'default')"
        ),
    )
    serve.add_argument(
        "--probe-workers",
        type=probe_workers,
        default=1,
        metavar="N",
        help=_("probe in N processes of their own (1–64, or auto: one per core); default 1: in the server's process"),
    )
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser(
        "demo",
        help=_("replay the February 2024 cyberattacks offline: simulator, monitor and page"),
        description=_(
            "Replay the February 2024 cyberattacks (Viamedis, Almerys) offline, on loopback: "
            "a simulator of the networks, tpmon probing it, and the page. History before the story is replayed "
            "at start; the story then plays in about 10 minutes."
        ),
    )
    demo.add_argument("--host", default="127.0.0.1", help=_("address of the page (default 127.0.0.1)"))
    demo.add_argument("--port", type=port_number, default=8080, help=_("port of the page, 1–65535 (default 8080)"))
    demo.add_argument(
        "--speed", type=float, help=_("scenario seconds per real second (default: the story lasts ~10 min)")
    )
    demo.add_argument(
        "--smtp-sink",
        type=Path,
        metavar="DIR",
        help=_(
            "e-mail subscriptions on, sent to a local SMTP server: the messages a demo optician subscribed to "
            "Viamedis optique receives are printed and kept in DIR as .eml files"
        ),
    )
    demo.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    demo.set_defaults(func=cmd_demo)

    check = command(
        "check-config", _("validate a config file and list every problem (exit 2 if any) and what will stay blind")
    )
    check.add_argument("file", nargs="?", help=_("the YAML file (default: --config)"))
    check.add_argument(
        "--strict", action="store_true", help=_("warnings (lines no check, push or dependency feeds) are errors")
    )
    check.set_defaults(func=cmd_check_config)

    probe = command("probe", _("run one check now and print its result with its phases"))
    probe.add_argument("target", metavar="NETWORK/FLOW/CHECK", help=_("e.g. viamedis/portail_ps/portail"))
    probe.add_argument("--json", action="store_true", help=_("print JSON"))
    probe.set_defaults(func=cmd_probe)

    status = command("status", _("print the current board from the database"))
    status.add_argument("--json", action="store_true", help=_("print JSON for machines"))
    status.set_defaults(func=cmd_status)

    register_push(command)

    reload = command("reload", _("validate the config, then make the running server reload it (SIGHUP)"))
    reload.add_argument(
        "--pid-file",
        default=DEFAULT_PID_FILE,
        help=_("the server's pid file (default {path})").format(path=DEFAULT_PID_FILE),
    )
    reload.add_argument(
        "--wait", type=_wait_seconds, default=10.0, help=_("seconds to wait for the server's answer (at most 600)")
    )
    reload.set_defaults(func=cmd_reload)

    export = command("export", _("write the public site (pages FR/EN, feeds, badges, JSON) as static files, no probe"))
    export.add_argument("dir", metavar="DIR", help=_("the folder to (re)place; a previous export or a new folder"))
    export.add_argument(
        "--base-url",
        help=_(
            "the address the export will be served at, for the feeds' and JSON's links "
            "(default: the config's web.public_url, else {url})"
        ).format(url=DEFAULT_EXPORT_URL),
    )
    export.set_defaults(func=cmd_export)

    db = sub.add_parser("db", help=_("database maintenance"), description=_("Database maintenance."))
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    upgrade = db_sub.add_parser(
        "upgrade", help=_("apply the schema migrations"), description=_("Apply the schema migrations.")
    )
    upgrade.set_defaults(func=cmd_db_upgrade)
    add_ops_commands(sub)  # incident, maintenance
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    install_argparse_texts()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(exc.text(cli_lang()), file=sys.stderr)
        refused = _("tpmon: {count} problem(s) in the config; nothing was started")
        print(refused.format(count=len(exc.problems)), file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"tpmon: {exc.text(cli_lang())}", file=sys.stderr)
        return 1
    except MonitorError as exc:
        print(f"tpmon: {exc.text(cli_lang())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `tpmon status | head`: the reader has what it wanted; nothing more to say
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 141  # as a shell reports a command killed by SIGPIPE
    except Exception as exc:  # last resort: a bug must still end in one line, not a traceback
        if os.environ.get("TPMON_DEBUG"):
            raise
        bug = _("tpmon: internal error ({error}); set TPMON_DEBUG=1 for details")
        print(bug.format(error=f"{type(exc).__name__}: {exc}"), file=sys.stderr)
        return 70
    return code


if __name__ == "__main__":
    sys.exit(main())
