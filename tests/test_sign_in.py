"""Staff sign-in on the operators' listener: password (Argon2id) and a TOTP code computed here, enrolment of the
second factor, one refusal for every failure, lockout per account, throttling per address, server-side sessions
with idle and absolute expiry, the cookie's attributes and CSRF checks."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pyotp
import pytest
from operators_support import LIGHT, PASSWORD, Clock, Listener, listener, make_user

from monitor.operators.staff_access import Granted, Refused, StaffAccess
from monitor.staff.passwords import Passwords
from monitor.staff.sessions import SessionClock
from monitor.store import Store
from monitor.store.audit_store import audit_events
from monitor.store.staff_store import StaffStore

SESSION = "/api/v1/session"
ENROL = "/api/v1/session/enrolment"


@pytest.fixture
def admin(tmp_path: Path) -> Iterator[Listener]:
    with listener(tmp_path) as found:
        yield found


def code(admin: Listener, name: str, seconds: float = 0) -> str:
    user = StaffStore(admin.store).user(name)
    assert user is not None
    return pyotp.TOTP(user.totp_secret).at(admin.clock.now.timestamp() + seconds)


def enrolled(admin: Listener, name: str = "ada", role: str = "admin", networks: tuple[str, ...] = ()) -> None:
    """An account whose second factor is set up, as after its first sign-in; no session left open."""
    make_user(admin.store, name, role, networks)
    first = admin.client.post(SESSION, json={"name": name, "password": PASSWORD})
    assert first.status_code == 200 and first.json()["stage"] == "enrol", first.text
    csrf = first.json()["csrf_token"]
    done = admin.client.post(ENROL, json={"code": code(admin, name)}, headers={"X-CSRF-Token": csrf})
    assert done.status_code == 200 and done.json()["stage"] == "full", done.text
    admin.client.cookies.clear()
    admin.clock.advance(seconds=30)  # the enrolment's code is used: the next sign-in needs the next one


def test_first_sign_in_enrols_the_second_factor_then_it_is_mandatory(admin: Listener) -> None:
    make_user(admin.store, "eve", "editor", ("viamedis",))
    first = admin.client.post(SESSION, json={"name": "eve", "password": PASSWORD})
    assert first.status_code == 200
    assert {k: first.json()[k] for k in ("name", "role", "networks", "stage")} == {
        "name": "eve",
        "role": "editor",
        "networks": ["viamedis"],
        "stage": "enrol",
    }
    cookie = first.headers["set-cookie"]
    assert cookie.startswith("tpmon_session=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Path=/" in cookie and "Secure" not in cookie
    assert admin.client.get(SESSION).json()["stage"] == "enrol"
    setup = admin.client.get(ENROL).json()
    user = StaffStore(admin.store).user("eve")
    assert user is not None and setup["secret"] == user.totp_secret
    assert setup["provisioning_uri"].startswith("otpauth://totp/tpmon:eve?secret=")
    csrf = first.json()["csrf_token"]
    assert admin.client.post(ENROL, json={"code": "000000"}, headers={"X-CSRF-Token": csrf}).status_code == 401
    assert admin.client.post(ENROL, json={"code": code(admin, "eve")}).status_code == 403  # no CSRF token
    done = admin.client.post(ENROL, json={"code": code(admin, "eve")}, headers={"X-CSRF-Token": csrf})
    assert done.status_code == 200 and done.json()["stage"] == "full"
    assert done.json()["csrf_token"] != csrf  # a new session: the enrolment one is over
    assert admin.client.get(SESSION).json()["stage"] == "full"
    admin.client.cookies.clear()
    admin.clock.advance(seconds=30)
    assert admin.client.post(SESSION, json={"name": "eve", "password": PASSWORD}).status_code == 401  # code needed
    signed = admin.client.post(SESSION, json={"name": "eve", "password": PASSWORD, "code": code(admin, "eve")})
    assert signed.status_code == 200 and signed.json()["stage"] == "full"
    trail = [(e.actor, e.action) for e in reversed(audit_events(admin.store, target="user:eve"))]
    assert trail == [
        ("user:eve", "session.open"),
        ("user:eve", "mfa.enrol"),
        ("anonymous", "signin.refused"),  # someone tried eve's account: who is not known
        ("user:eve", "session.open"),
    ]


def test_a_code_works_once_and_a_phone_a_little_late_still_signs_in(admin: Listener) -> None:
    enrolled(admin)
    admin.clock.advance(seconds=30)
    late = code(admin, "ada", -30)  # the step after the enrolment's
    first = admin.client.post(SESSION, json={"name": "ada", "password": PASSWORD, "code": late})
    assert first.status_code == 200
    admin.client.cookies.clear()
    replay = admin.client.post(SESSION, json={"name": "ada", "password": PASSWORD, "code": late})
    assert replay.status_code == 401


def test_every_refusal_is_the_same_answer(admin: Listener) -> None:
    enrolled(admin)
    make_user(admin.store, "gone")
    StaffStore(admin.store).set_disabled("gone", True)
    answers = [
        admin.client.post(SESSION, json={"name": "nobody", "password": PASSWORD, "code": code(admin, "ada")}),
        admin.client.post(SESSION, json={"name": "ada", "password": "wrong password!", "code": code(admin, "ada")}),
        admin.client.post(SESSION, json={"name": "ada", "password": PASSWORD, "code": "123456"}),
        admin.client.post(SESSION, json={"name": "gone", "password": PASSWORD}),
        admin.client.post(SESSION, json={"name": "Not An Account!", "password": PASSWORD}),
    ]
    assert {(a.status_code, a.text) for a in answers} == {(answers[0].status_code, answers[0].text)}
    assert answers[0].status_code == 401 and "Connexion refusée" in answers[0].json()["error"]
    assert all("set-cookie" not in a.headers for a in answers)
    targets = {e.target for e in audit_events(admin.store, action="signin.refused")}
    assert targets == {"user:ada", "user:gone"}  # a name that is no account is never written down


def test_an_unknown_account_takes_as_long_as_a_wrong_password(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path}/t.db") as store:
        passwords = Passwords()  # production parameters: what would betray an account is the Argon2 work
        StaffStore(store).add_user("ada", "admin", [], passwords.hash(PASSWORD), "JBSWY3DPEHPK3PXP")
        access = StaffAccess(store, passwords, clock=Clock(), sessions=lambda: SessionClock.__new__(SessionClock))

        def cost(name: str, address: str) -> float:
            start = time.perf_counter()
            assert isinstance(access.sign_in(name, "wrong password!", "", address, "admin"), Refused)
            return time.perf_counter() - start

        unknown = statistics.median(cost("nobody", f"10.0.0.{i}") for i in range(5))
        wrong = statistics.median(cost("ada", f"10.0.1.{i}") for i in range(5))
        assert 0.25 < unknown / wrong < 4.0, (unknown, wrong)  # without the dummy hash: ~0.001


def test_an_account_locks_after_five_refusals_in_a_row(admin: Listener) -> None:
    enrolled(admin)
    for _ in range(5):
        wrong = {"name": "ada", "password": "not the password", "code": code(admin, "ada")}
        assert admin.client.post(SESSION, json=wrong).status_code == 401
    right = {"name": "ada", "password": PASSWORD, "code": code(admin, "ada")}
    assert admin.client.post(SESSION, json=right).status_code == 401  # locked: the right answer is refused too
    locked = audit_events(admin.store, action="account.locked")
    assert len(locked) == 1 and locked[0].target == "user:ada"
    admin.clock.advance(minutes=15)
    again = admin.client.post(SESSION, json={**right, "code": code(admin, "ada")})
    assert again.status_code == 200, again.text
    user = StaffStore(admin.store).user("ada")
    assert user is not None and user.failed_count == 0 and user.locked_until is None


def test_an_address_that_fails_too_often_waits(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path}/t.db") as store:
        StaffStore(store).add_user("ada", "admin", [], LIGHT.hash(PASSWORD), "JBSWY3DPEHPK3PXP")
        ticks = [0.0]
        timing = SessionClock.__new__(SessionClock)
        access = StaffAccess(store, LIGHT, clock=Clock(), sessions=lambda: timing, monotonic=lambda: ticks[0])
        outcomes = [access.sign_in(f"user{i}", "x" * 12, "", "203.0.113.9", "admin") for i in range(21)]
        assert outcomes[:20] == [Refused()] * 20
        assert isinstance(outcomes[20], Refused) and outcomes[20].retry_after == 900
        assert access.sign_in("ada", PASSWORD, "", "203.0.113.9", "admin") == Refused(900)  # even the right one
        assert isinstance(access.sign_in("ada", "wrong", "", "198.51.100.1", "admin"), Refused)
        ticks[0] += 901
        assert access.address_wait("203.0.113.9") == 0


def test_the_endpoint_answers_429_to_a_throttled_address(admin: Listener) -> None:
    for _ in range(20):
        assert admin.client.post(SESSION, json={"name": "x", "password": "y" * 12}).status_code == 401
    throttled = admin.client.post(SESSION, json={"name": "x", "password": "y" * 12})
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0
    # said in the request's language, French by default, with the stable code
    assert throttled.json()["code"] == "too_many_requests"
    assert throttled.json()["error"].startswith("trop de connexions refusées depuis cette adresse")
    english = admin.client.post(SESSION, json={"name": "x", "password": "y" * 12}, headers={"Accept-Language": "en"})
    assert english.status_code == 429
    assert english.json()["error"] == "too many refused sign-ins from this address; retry later"


def test_sessions_end_when_idle_or_too_old_and_with_their_account(admin: Listener) -> None:
    enrolled(admin)
    signed = admin.client.post(SESSION, json={"name": "ada", "password": PASSWORD, "code": code(admin, "ada")})
    assert signed.status_code == 200
    admin.clock.advance(minutes=29)
    assert admin.client.get(SESSION).status_code == 200  # used: the idle delay starts again
    admin.clock.advance(minutes=29)
    assert admin.client.get(SESSION).status_code == 200
    admin.clock.advance(minutes=31)
    assert admin.client.get(SESSION).status_code == 401  # idle 31 min
    admin.clock.advance(seconds=30)
    assert admin.client.post(SESSION, json={"name": "ada", "password": PASSWORD, "code": code(admin, "ada")}).is_success
    for _ in range(35):  # used every 20 min, all day long
        admin.clock.advance(minutes=20)
        assert admin.client.get(SESSION).status_code == 200
    admin.clock.advance(minutes=20)
    assert admin.client.get(SESSION).status_code == 401  # 12 h after sign-in
    admin.clock.advance(seconds=30)
    assert admin.client.post(SESSION, json={"name": "ada", "password": PASSWORD, "code": code(admin, "ada")}).is_success
    StaffStore(admin.store).set_disabled("ada", True)
    assert admin.client.get(SESSION).status_code == 401


def test_signing_out_needs_the_session_csrf_token_and_the_same_origin(admin: Listener) -> None:
    enrolled(admin)
    signed = admin.client.post(SESSION, json={"name": "ada", "password": PASSWORD, "code": code(admin, "ada")})
    csrf = signed.json()["csrf_token"]
    assert admin.client.delete(SESSION).status_code == 403
    assert admin.client.delete(SESSION, headers={"X-CSRF-Token": "0" * 64}).status_code == 403
    cross = {"X-CSRF-Token": csrf, "Origin": "https://evil.example"}
    assert admin.client.delete(SESSION, headers=cross).status_code == 403
    assert admin.client.get(SESSION).status_code == 200  # still signed in
    out = admin.client.delete(SESSION, headers={"X-CSRF-Token": csrf, "Origin": "http://127.0.0.1:8081"})
    assert out.status_code == 200 and "Max-Age=0" in out.headers["set-cookie"]
    assert admin.client.get(SESSION).status_code == 401
    assert [e.action for e in audit_events(admin.store, limit=1)] == ["session.close"]


def test_a_sign_in_from_another_origin_is_refused(admin: Listener) -> None:
    enrolled(admin)
    form = {"name": "ada", "password": PASSWORD, "code": code(admin, "ada")}
    assert admin.client.post(SESSION, json=form, headers={"Origin": "https://evil.example"}).status_code == 403
    assert admin.client.post(SESSION, json=form, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    signed = admin.client.post(SESSION, data=form)  # a plain HTML form works too
    assert signed.status_code == 200 and signed.json()["stage"] == "full"


def test_behind_https_the_cookie_is_secure_and_host_only(tmp_path: Path) -> None:
    with listener(tmp_path) as admin:
        make_user(admin.store, "ada")
        admin.client.base_url = "https://status-admin.example"
        signed = admin.client.post(SESSION, json={"name": "ada", "password": PASSWORD})
        cookie = signed.headers["set-cookie"]
        assert cookie.startswith("__Host-tpmon_session=") and "; Secure" in cookie and "Domain" not in cookie


def test_granted_sessions_carry_a_csrf_token_of_their_own(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path}/t.db") as store:
        StaffStore(store).add_user("ada", "admin", [], LIGHT.hash(PASSWORD), "JBSWY3DPEHPK3PXP")
        clock = Clock()
        timing = SessionClock(timedelta(minutes=30), timedelta(hours=12))
        access = StaffAccess(store, LIGHT, clock=clock, sessions=lambda: timing)
        first, second = (access.sign_in("ada", PASSWORD, "", f"10.0.0.{i}", "admin") for i in range(2))
        assert isinstance(first, Granted) and isinstance(second, Granted)
        assert first.session_id != second.session_id and first.csrf != second.csrf
        current = access.current(first.session_id, stage="enrol")
        assert current is not None and current.csrf == first.csrf
        assert access.current(first.session_id, stage="full") is None
        assert access.current("forged") is None and access.current("x" * 500) is None
