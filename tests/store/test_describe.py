"""`describe()` masks the URL's password in a driver's error where it stands as a whole token, never inside a
longer word: a short password must not garble the text ("p*** 1 failed"), and must never leak."""

from __future__ import annotations

import socket
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError

from monitor.store.database import describe


def _closed_port() -> int:
    """A loopback port nobody listens on (bound then released: connecting is refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _refused(password: str) -> tuple[str, int]:
    """describe() of the real driver's error connecting with `password` to a closed loopback port, and the port."""
    port = _closed_port()
    url = f"postgresql+psycopg://tpmon:{password}@127.0.0.1:{port}/tpmon?connect_timeout=2"
    engine = create_engine(url)
    try:
        with pytest.raises(OperationalError) as refused:
            engine.connect()
    finally:
        engine.dispose()
    return describe(refused.value, url), port


@pytest.mark.parametrize("password", ["p", "ort", "on"])
def test_a_real_driver_error_stays_readable_with_a_short_password(password: str) -> None:
    text, port = _refused(password)
    assert f"port {port} failed" in text, text
    assert "Connection refused" in text, text
    assert "***" not in text, text  # the password does not stand in it as a token


def test_a_password_that_is_a_word_of_the_driver_error_is_masked_there() -> None:
    text, port = _refused("port")
    assert f"*** {port} failed: Connection refused" in text, text  # never leaked, the rest whole


@pytest.mark.parametrize(
    ("message", "password", "expected"),
    [
        # short: masked where it stands alone, never inside a word
        (
            "connection to server at host, port 1 failed: Connection refused p",
            "p",
            "port 1 failed: Connection refused ***",
        ),
        ("ort 1 failed for ort", "ort", "*** 1 failed for ***"),
        # equal to a common word: masked as a token (never leaked), the longer words kept
        ("password authentication failed for user tpmon: password wrong", "password", "*** authentication failed"),
        ("could not connect: connection timed out", "connection", "could not connect: *** timed out"),
        # punctuation inside and at the edges
        ("bad password s3c.r!t for user tpmon", "s3c.r!t", "bad password *** for user tpmon"),
        ("value !secret! refused", "!secret!", "value *** refused"),
        ("a+b$c (a+b$c)", "a+b$c", "*** (***)"),
    ],
)
def test_the_password_is_masked_as_a_whole_token(message: str, password: str, expected: str) -> None:
    url = f"postgresql+psycopg://tpmon:{quote(password, safe='')}@db.example:5432/tpmon"
    text = describe(RuntimeError(message), url)
    assert expected in text, text


@pytest.mark.parametrize("password", ["p", "ort", "s3c.r!t", "p@ss word/:?", "x'y"])
@pytest.mark.parametrize(
    "template",
    [
        'invalid dsn: "postgresql://tpmon:{secret}@db.example:5432/tpmon"',
        "invalid connection option: host=db.example user=tpmon password={secret} dbname=tpmon",
        "invalid connection option: host=db.example user=tpmon password='{secret}' dbname=tpmon",
    ],
)
@pytest.mark.parametrize("encode", [False, True])
def test_a_dsn_echoed_in_the_message_never_leaks_the_password(password: str, template: str, encode: bool) -> None:
    url = f"postgresql+psycopg://tpmon:{quote(password, safe='')}@db.example:5432/tpmon"
    echoed = quote(password, safe="") if encode else password
    text = describe(RuntimeError(template.format(secret=echoed)), url)
    assert text == template.format(secret="***")


def test_no_url_or_no_password_leaves_the_message_as_it_is() -> None:
    message = "connection to server at 127.0.0.1, port 1 failed: Connection refused"
    assert describe(RuntimeError(message)) == message
    assert describe(RuntimeError(message), "postgresql+psycopg://tpmon@db.example/tpmon") == message
