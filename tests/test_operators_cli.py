"""`tpmon user …`, `tpmon token …` and `tpmon audit …` as ops run them, and the audit of every CLI write: one-line
refusals naming the option, passwords never as arguments, secrets shown once and never stored."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from operators_support import write_config

from monitor.cli import main
from monitor.staff.tokens import digest
from monitor.store import Store
from monitor.store.audit_store import audit_events
from monitor.store.staff_store import StaffStore

PASSWORD = "une phrase de passe solide"


class Cli:
    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
        self.url = f"sqlite:///{tmp_path}/tpmon.db"
        monkeypatch.setenv("TPMON_CONFIG", str(write_config(tmp_path)))
        monkeypatch.setenv("TPMON_DATABASE_URL", self.url)
        monkeypatch.setenv("LOGNAME", "oncall")
        self.monkeypatch, self.capsys = monkeypatch, capsys

    def run(self, *args: str, stdin: str = "") -> tuple[int, str, str]:
        self.monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        self.capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exited:
            code = int(exited.code or 0)
        out = self.capsys.readouterr()
        return code, out.out, out.err

    def ok(self, *args: str, stdin: str = "") -> str:
        code, out, err = self.run(*args, stdin=stdin)
        assert code == 0, err
        return out

    def refused(self, *args: str, stdin: str = "") -> str:
        code, out, err = self.run(*args, stdin=stdin)
        assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, (code, out, err)
        return err.strip()

    def audit(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = json.loads(self.ok("audit", "list", "--json"))
        return found


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(tmp_path, monkeypatch, capsys)


def test_accounts_are_added_listed_disabled_reset_and_audited(cli: Cli, tmp_path: Path) -> None:
    out = cli.ok("user", "add", "eve", "--role", "editor", "--network", "viamedis", "--password-stdin", stdin=PASSWORD)
    assert "account eve added (editor on viamedis)" in out and "second factor" in out
    secret_file = tmp_path / "pw"
    secret_file.write_text(PASSWORD + "\n", encoding="utf-8")
    cli.ok("user", "add", "ada", "--role", "admin", "--password-file", str(secret_file))
    listed = json.loads(cli.ok("user", "list", "--json"))
    assert [(u["name"], u["role"], u["second_factor"]) for u in listed] == [
        ("ada", "admin", "pending"),
        ("eve", "editor", "pending"),
    ]
    assert "argon2" not in cli.ok("user", "list") and PASSWORD not in cli.ok("user", "list", "--json")
    cli.ok("user", "disable", "eve")
    cli.ok("user", "enable", "eve")
    with Store.open(cli.url) as store:
        before = StaffStore(store).user("eve")
    cli.ok("user", "reset-mfa", "eve")
    cli.ok("user", "password", "eve", "--password-stdin", stdin="une autre phrase solide")
    with Store.open(cli.url) as store:
        after = StaffStore(store).user("eve")
    assert before is not None and after is not None
    assert after.totp_secret != before.totp_secret and after.password_hash != before.password_hash
    trail = cli.audit()
    assert [(e["action"], e["target"]) for e in trail] == [
        ("user.password", "user:eve"),
        ("user.reset_mfa", "user:eve"),
        ("user.enable", "user:eve"),
        ("user.disable", "user:eve"),
        ("user.add", "user:ada"),
        ("user.add", "user:eve"),
    ]
    assert {(e["actor"], e["listener"]) for e in trail} == {("cli:oncall", "cli")}
    assert trail[3]["before"]["disabled"] is False and trail[3]["after"]["disabled"] is True
    assert PASSWORD not in json.dumps(trail) and before.totp_secret not in json.dumps(trail)


def test_account_refusals_name_the_option(cli: Cli) -> None:
    cli.ok("user", "add", "ada", "--role", "admin", "--password-stdin", stdin=PASSWORD)
    for args, stdin, words in [
        (("user", "add", "ada", "--role", "viewer", "--password-stdin"), PASSWORD, "name: an account named 'ada'"),
        (("user", "add", "bob@example.org", "--role", "viewer", "--password-stdin"), PASSWORD, "no e-mail"),
        (("user", "add", "bob", "--role", "editor", "--password-stdin"), PASSWORD, "networks: an editor"),
        (("user", "add", "bob", "--role", "editor", "--network", "nope", "--password-stdin"), PASSWORD, "--network"),
        (("user", "add", "bob", "--role", "viewer", "--password-stdin"), "short", "password: at least 12"),
        (("user", "add", "bob", "--role", "viewer"), PASSWORD, "no terminal"),
        (("user", "disable", "nobody"), "", "no account named 'nobody'"),
        (("user", "add", "bob", "--role", "root", "--password-stdin"), PASSWORD, "--role"),
        (
            ("user", "add", "bob", "--role", "viewer", "--password", PASSWORD),
            "",
            "never give a password as an argument",
        ),
    ]:
        refusal = cli.refused(*args, stdin=stdin)
        assert words in refusal and PASSWORD not in refusal, args
    assert [u["name"] for u in json.loads(cli.ok("user", "list", "--json"))] == ["ada"]


def test_tokens_are_shown_once_stored_as_digests_listed_and_revoked(cli: Cli) -> None:
    out = cli.ok(
        "token", "create", "--scope", "push:viamedis/pec/operateur", "--label", "viamedis-pec", "--expires", "30d"
    )
    secret = next(line for line in out.splitlines() if line.startswith("tpm_"))
    assert "Shown once" in out and "/api/push/<token>" in out and "viamedis_operateur/external" in out
    with Store.open(cli.url) as store:
        raw = store.engine.connect().exec_driver_sql("SELECT * FROM api_token").fetchall()
    assert secret not in repr(raw) and digest(secret) in repr(raw)
    listed = json.loads(cli.ok("token", "list", "--json"))
    assert [(t["prefix"], t["label"], t["scopes"]) for t in listed] == [
        (secret[:12], "viamedis-pec", ["push:viamedis/pec/operateur"])
    ]
    assert listed[0]["expires_at"] is not None and listed[0]["last_used_at"] is None
    assert secret not in cli.ok("token", "list")
    cli.ok("token", "create", "--scope", "admin", "--label", "ops", "--no-expiry")
    cli.ok("token", "revoke", secret[:12])
    assert [t["label"] for t in json.loads(cli.ok("token", "list", "--json"))] == ["ops"]
    assert len(json.loads(cli.ok("token", "list", "--all", "--json"))) == 2
    trail = cli.audit()
    assert [e["action"] for e in trail] == ["token.revoke", "token.create", "token.create"]
    assert (trail[0]["target"], trail[2]["target"]) == (f"token:{secret[:12]}", f"token:{secret[:12]}")
    assert trail[0]["before"]["revoked_at"] is None and trail[0]["after"]["revoked_at"] is not None
    assert secret not in json.dumps(trail)


def test_token_refusals_name_the_option(cli: Cli) -> None:
    for args, words in [
        (("--scope", "write:nope", "--label", "x"), "--scope: write:nope: no network 'nope'"),
        (("--scope", "push:viamedis/portail_ps/portail", "--label", "x"), "probed by tpmon"),
        (("--scope", "everything", "--label", "x"), "is not a scope"),
        (("--scope", "admin", "--label", "Jean Dupont"), "--label"),
        (("--scope", "admin", "--label", "x", "--expires", "soon"), "--expires"),
    ]:
        assert words in cli.refused("token", "create", *args), args
    assert "no token 'tpm_nothing'" in cli.refused("token", "revoke", "tpm_nothing")
    assert json.loads(cli.ok("token", "list", "--json")) == []


def test_cli_declarations_are_audited_as_the_os_user(cli: Cli) -> None:
    cli.ok("incident", "open", "--title", "PEC KO", "--impact", "major", "--message", "M",
           "--declare", "line:viamedis/optique=down")  # fmt: skip
    cli.ok("incident", "update", "1", "--message", "Réactivation", "--declare", "line:viamedis/optique=recovering:50%")
    cli.ok("incident", "resolve", "1")
    window = (
        "--title",
        "Dimanche",
        "--component",
        "flow:viamedis/pec",
        "--start",
        "2030-01-06 02:00",
        "--weekly",
        "sun",
    )
    cli.ok("maintenance", "add", *window, "--duration", "2h")
    out = cli.ok("maintenance", "cancel", "1", "--occurrence", "2030-01-13")
    assert "13/01/2030 is cancelled" in out
    assert "--occurrence: no occurrence" in cli.refused("maintenance", "cancel", "1", "--occurrence", "2030-01-14")
    cli.ok("maintenance", "cancel", "1")
    cli.ok("push", "viamedis/pec/operateur", "--state", "down", "--detail", "pec_ko")
    trail = cli.audit()
    assert [e["action"] for e in trail] == [
        "maintenance.cancel",
        "maintenance.cancel_occurrence",
        "maintenance.add",
        "incident.resolve",
        "incident.update",
        "incident.open",
    ]
    assert {(e["actor"], e["listener"]) for e in trail} == {("cli:oncall", "cli")}
    assert trail[4]["after"]["last_update"]["statuses"] == {
        "line:viamedis/optique": {"state": "recovering", "progress": 0.5}
    }
    from monitor.store.signal_store import signals_after

    with Store.open(cli.url) as store:
        assert [(s.author, s.detail) for s in signals_after(store, 0)] == [("cli:oncall", "pec_ko")]
        assert len(audit_events(store, actor="cli:oncall")) == 6


def test_the_audit_trail_exports_as_json_lines(cli: Cli, tmp_path: Path) -> None:
    for name in ("ada", "bob", "cyd"):
        cli.ok("user", "add", name, "--role", "viewer", "--password-stdin", stdin=PASSWORD)
    code, out, err = cli.run("audit", "export")
    assert code == 0 and err.strip() == "3 audit events exported"
    lines = [json.loads(line) for line in out.splitlines()]
    assert [e["target"] for e in lines] == ["user:ada", "user:bob", "user:cyd"]  # oldest first
    assert set(lines[0]) == {"id", "at", "actor", "listener", "action", "target", "before", "after"}
    assert cli.run("audit", "export", "--since", "2999-01-01")[1] == ""
    table = cli.ok("audit", "list", "--limit", "1")
    assert "user.add" in table and "user:cyd" in table and "user:ada" not in table


def test_the_operators_listener_needs_its_own_free_address(cli: Cli) -> None:
    import socket

    same = cli.refused("serve", "--port", "18555", "--admin-port", "18555")
    assert same == "tpmon: --admin-port: the operators' listener cannot share the public address 127.0.0.1:18555"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            public = free.getsockname()[1]
        refused = cli.refused("serve", "--port", str(public), "--admin-port", str(port))
    assert refused == f"tpmon: --admin-port: cannot listen on 127.0.0.1:{port} (already in use); choose another port"
