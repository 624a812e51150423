"""Who may write, pure: scopes and roles, Argon2id passwords, TOTP with its replay guard, tokens, sessions, CSRF,
and the throttles in memory (on an injected clock)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from monitor.config import Settings
from monitor.errors import NotAllowed
from monitor.models import ComponentRef
from monitor.staff.audit import cli_actor
from monitor.staff.passwords import PasswordError, Passwords, check_new_password
from monitor.staff.roles import Principal, Scope, check_scope, grants_of_role, parse_scope
from monitor.staff.second_factor import matching_step, new_secret, provisioning_uri
from monitor.staff.sessions import SessionClock, csrf_token, csrf_valid, set_cookie_header
from monitor.staff.throttle import Buckets, Failures
from monitor.staff.tokens import digest, looks_like_token, new_token, public_prefix

T0 = datetime(2024, 2, 12, 12, 0, tzinfo=UTC)
FAST = Passwords(time_cost=1, memory_cost=8, parallelism=1)


def settings() -> Settings:
    return Settings.model_validate(
        {
            "networks": {
                "viamedis": {
                    "name": "Viamedis",
                    "kind": "operateur",
                    "lines": ["optique"],
                    "checks": [
                        {"name": "operateur", "flow": "pec", "kind": "push"},
                        {"name": "portail", "flow": "portail_ps", "kind": "tcp", "host": "x.example", "port": 443},
                    ],
                },
                "almerys": {"name": "Almerys", "kind": "operateur", "lines": ["optique"]},
            }
        }
    )


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("text", "scope"),
    [
        ("admin", Scope("admin")),
        ("write:viamedis", Scope("write", "viamedis")),
        ("push:viamedis", Scope("push", "viamedis")),
        ("push:viamedis/pec/operateur", Scope("push", "viamedis", "pec", "operateur")),
    ],
)
def test_scopes_read_and_write_back(text: str, scope: Scope) -> None:
    assert parse_scope(text) == scope
    assert str(scope) == text


@pytest.mark.parametrize(
    "text", ["", "root", "write:", "write:Viamedis", "push:a/b", "write:a/b/c", "admin:x", "push: a"]
)
def test_malformed_scopes_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a scope"):
        parse_scope(text)


def test_scopes_are_checked_against_the_config() -> None:
    check_scope(parse_scope("push:viamedis/pec/operateur"), settings())
    for text, problem in [
        ("write:nope", "no network 'nope'"),
        ("push:viamedis/pec/nope", "no check viamedis/pec/nope"),
        ("push:viamedis/portail_ps/portail", "probed by tpmon"),
    ]:
        with pytest.raises(ValueError, match=problem):
            check_scope(parse_scope(text), settings())


def test_an_editor_writes_on_its_networks_only_and_a_viewer_nowhere() -> None:
    editor = Principal("user:eve", grants_of_role("editor", ["viamedis"]))
    editor.require_write(["line:viamedis/optique", "flow:viamedis/pec", "network:viamedis"])
    with pytest.raises(NotAllowed, match="'almerys'"):
        editor.require_write(["line:viamedis/optique", "line:almerys/optique"])
    viewer = Principal("user:val", grants_of_role("viewer", []))
    with pytest.raises(NotAllowed, match="may not write"):
        viewer.require_write([])
    admin = Principal("user:ada", grants_of_role("admin", []))
    admin.require_write(["line:almerys/optique"])
    assert admin.may_push(ComponentRef.for_check("almerys", "pec", "x"))


def test_push_scopes_cover_one_check_or_a_network() -> None:
    one = Principal("token:a", (parse_scope("push:viamedis/pec/operateur"),))
    whole = Principal("token:b", (parse_scope("push:viamedis"),))
    writer = Principal("token:c", (parse_scope("write:viamedis"),))
    check, other = (
        ComponentRef.for_check("viamedis", "pec", "operateur"),
        ComponentRef.for_check("viamedis", "pec", "x"),
    )
    assert one.may_push(check) and not one.may_push(other)
    assert whole.may_push(check) and whole.may_push(other)
    assert not whole.may_push(ComponentRef.for_check("almerys", "pec", "operateur"))
    assert not writer.may_push(check)  # writing incidents is not pushing
    assert not one.writes_anywhere


def test_passwords_are_argon2id_and_verify() -> None:
    stored = FAST.hash("une phrase de passe assez longue")
    assert stored.startswith("$argon2id$")
    assert FAST.verify(stored, "une phrase de passe assez longue")
    assert not FAST.verify(stored, "une phrase de passe assez longuE")
    assert not FAST.verify(None, "anything")  # no account: the same work, always False
    assert not FAST.verify("not a hash", "anything")
    assert not FAST.verify(stored, "x" * 100_000)  # bounded: never hashed past the limit
    assert Passwords().needs_rehash(stored)  # weaker than the default: rehashed at the next sign-in
    assert not FAST.needs_rehash(stored)


def test_an_unknown_account_costs_what_a_wrong_password_costs() -> None:
    passwords = Passwords()  # the production parameters: the difference to hide is the Argon2 work
    stored = passwords.hash("une phrase de passe assez longue")

    def cost(check: object) -> float:
        start = time.perf_counter()
        for _ in range(3):
            assert not passwords.verify(check, "wrong password!")  # type: ignore[arg-type]
        return time.perf_counter() - start

    unknown, wrong = cost(None), cost(stored)
    assert 0.25 < unknown / wrong < 4.0, (unknown, wrong)  # without the dummy hash: ~0.001


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("short", "at least 12"),
        ("x" * 300, "at most 256"),
        ("aaaaaaaaaaaaaaaa", "too simple"),
        ("alice-est-la-2024", "account name"),
    ],
)
def test_new_passwords_follow_the_rules(password: str, problem: str) -> None:
    with pytest.raises(PasswordError, match=problem):
        check_new_password(password, "alice")
    check_new_password("correct horse battery", "alice")


def test_totp_accepts_the_current_code_once_and_a_step_of_drift() -> None:
    secret = new_secret()
    assert len(secret) == 32 and re.fullmatch(r"[A-Z2-7]+", secret)
    totp = pyotp.TOTP(secret)
    step = matching_step(secret, totp.at(T0), T0)
    assert step == totp.timecode(T0)
    assert matching_step(secret, totp.at(T0), T0, after=step) is None  # replayed: refused
    assert matching_step(secret, totp.at(T0 - timedelta(seconds=30)), T0) == step - 1  # phone 30 s late
    assert matching_step(secret, totp.at(T0 - timedelta(seconds=90)), T0) is None
    for bad in ("", "12345", "1234567", "abcdef", "١٢٣٤٥٦"):
        assert matching_step(secret, bad, T0) is None
    assert matching_step(secret, " " + totp.at(T0)[:3] + " " + totp.at(T0)[3:], T0) == step  # as apps show it


def test_the_provisioning_uri_is_what_authenticator_apps_read() -> None:
    uri = provisioning_uri("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "alice")
    assert uri.startswith("otpauth://totp/tpmon:alice?")
    assert "secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP" in uri and "issuer=tpmon" in uri


def test_tokens_are_random_shown_by_prefix_and_kept_as_digests() -> None:
    first, second = new_token(), new_token()
    assert first != second and looks_like_token(first) and len(first) == 47
    assert public_prefix(first) == first[:12] and public_prefix(first).startswith("tpm_")
    assert digest(first) == digest(first) and digest(first) != digest(second) and len(digest(first)) == 64
    assert first not in digest(first)
    assert not looks_like_token("tpm_short") and not looks_like_token("Bearer " + first)


def test_sessions_end_when_idle_or_too_old() -> None:
    clock = SessionClock(idle=timedelta(minutes=30), lifetime=timedelta(hours=12))
    assert clock.live(T0, T0 + timedelta(minutes=20), T0 + timedelta(minutes=49))
    assert not clock.live(T0, T0 + timedelta(minutes=20), T0 + timedelta(minutes=50))  # idle 30 min
    late = T0 + timedelta(hours=11, minutes=50)
    assert clock.live(T0, late, late + timedelta(minutes=5))
    assert not clock.live(T0, late, T0 + timedelta(hours=12))  # used all along, but 12 h old
    assert clock.ends_at(T0, late) == T0 + timedelta(hours=12)


def test_csrf_tokens_belong_to_their_session() -> None:
    token = csrf_token("session-a")
    assert csrf_valid("session-a", token)
    assert not csrf_valid("session-b", token)
    assert not csrf_valid("session-a", None) and not csrf_valid("session-a", "")


def test_the_session_cookie_is_httponly_strict_and_secure_behind_https() -> None:
    name, plain = set_cookie_header("abc", secure=False, max_age=60)
    assert name == "set-cookie"
    assert plain == "tpmon_session=abc; Path=/; HttpOnly; SameSite=Strict; Max-Age=60"
    assert set_cookie_header("abc", secure=True, max_age=None)[1] == (
        "__Host-tpmon_session=abc; Path=/; HttpOnly; SameSite=Strict; Secure"
    )


def test_buckets_allow_a_burst_then_the_rate() -> None:
    ticks = Ticks()
    buckets = Buckets(rate=60, per=60.0, clock=ticks)
    assert [buckets.take("a") for _ in range(60)] == [0.0] * 60
    assert buckets.take("a") == pytest.approx(1.0)  # one a second, refilled
    assert buckets.take("b") == 0.0  # each key its own bucket
    ticks.now += 1.0
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0.0


def test_buckets_forget_the_oldest_keys_past_their_size() -> None:
    ticks = Ticks()
    buckets = Buckets(rate=1, per=60.0, size=2, clock=ticks)
    for key in ("a", "b", "c"):
        assert buckets.take(key) == 0.0
    assert buckets.take("c") > 0.0 and buckets.take("b") > 0.0
    assert buckets.take("a") == 0.0  # forgotten: full again (the bound costs a little leniency, never memory)


def test_failures_block_past_the_limit_within_the_window() -> None:
    ticks = Ticks()
    failures = Failures(limit=3, window=60.0, clock=ticks)
    for _ in range(3):
        assert failures.blocked("10.0.0.1") == 0.0
        failures.fail("10.0.0.1")
    assert failures.blocked("10.0.0.1") == 60.0
    assert failures.blocked("10.0.0.2") == 0.0
    ticks.now += 59.0
    assert failures.blocked("10.0.0.1") == 1.0
    ticks.now += 1.5
    assert failures.blocked("10.0.0.1") == 0.0  # the first failure left the window


def test_the_cli_actor_is_the_os_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGNAME", "ops-oncall")
    monkeypatch.setenv("USER", "ops-oncall")
    assert cli_actor() == "cli:ops-oncall"
    monkeypatch.setenv("LOGNAME", "weird name\nwith newline")
    assert cli_actor() == "cli:weird-name-with-newline"
