"""French-first formats through Babel: Paris time in 24 h, one date format per use, French numbers, language choice."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.i18n import (
    Lang,
    format_date,
    format_datetime,
    format_decimal,
    format_hour,
    format_percent,
    format_short,
    format_since,
    pick_lang,
)

WINTER = datetime(2024, 2, 12, 12, 0, tzinfo=UTC)  # 13:00 in Paris (UTC+1)
SUMMER = datetime(2024, 7, 1, 12, 0, tzinfo=UTC)  # 14:00 in Paris (UTC+2)


def test_a_moment_is_told_in_paris_time_24_h_in_one_format() -> None:
    assert format_datetime(WINTER) == "lun. 12 févr. 2024, 13:00"
    assert format_datetime(WINTER, "en") == "Mon 12 Feb 2024, 13:00"
    assert format_datetime(SUMMER) == "lun. 1er juil. 2024, 14:00"  # le 1er
    assert format_datetime(SUMMER, "en") == "Mon 1 Jul 2024, 14:00"
    assert format_datetime(datetime(2024, 2, 12, 23, 30, tzinfo=UTC)) == "mar. 13 févr. 2024, 00:30"
    assert format_datetime(None) == "—"


def test_a_day_an_hour_and_the_terminal_format() -> None:
    assert format_date(WINTER) == "lun. 12 févr. 2024"
    assert format_date(date(2024, 3, 1), "en") == "Fri 1 Mar 2024"
    assert format_date(date(2024, 3, 1)) == "ven. 1er mars 2024"
    assert format_date(datetime(2024, 2, 12, 23, 30, tzinfo=UTC)) == "mar. 13 févr. 2024"  # the Paris day
    assert format_hour(SUMMER) == "14:00"
    assert format_short(WINTER) == "12/02/2024 13:00"  # the CLI's, never a page's


def test_since_omits_the_current_year_only() -> None:
    assert format_since(WINTER, SUMMER) == "lun. 12 févr., 13:00"
    assert format_since(WINTER, SUMMER, "en") == "Mon 12 Feb, 13:00"
    assert format_since(WINTER, datetime(2025, 1, 1, tzinfo=UTC)) == "lun. 12 févr. 2024, 13:00"
    # New Year's Eve 23:30 UTC is already next year in Paris
    assert format_since(datetime(2024, 12, 31, 23, 30, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC)) == (
        "mer. 1er janv., 00:30"
    )


@pytest.mark.parametrize(
    ("ratio", "lang", "digits", "shown"),
    [
        (1.0, "fr", 2, "100\u00a0%"),
        (0.5, "fr", 0, "50\u00a0%"),  # no trailing zero of an integer is dropped
        (0.25, "en", 0, "25%"),
        (0.99999, "fr", 2, "99,99\u00a0%"),  # never rounded up to 100 %
        (0.9986, "fr", 2, "99,86\u00a0%"),
        (0.57, "fr", 2, "57\u00a0%"),  # 0.57 × 100 is 56.99999… in floating point
        (0.105, "en", 1, "10.5%"),
        (0.0, "fr", 2, "0\u00a0%"),
        (None, "fr", 2, "—"),
    ],
)
def test_percentages_in_french_and_english(ratio: float | None, lang: Lang, digits: int, shown: str) -> None:
    assert format_percent(ratio, lang, digits) == shown


def test_numbers_in_french_and_english() -> None:
    assert format_decimal(1234.5) == "1\u202f234,5"
    assert format_decimal(1234.5, "en") == "1,234.5"


@given(st.floats(min_value=0.0, max_value=0.99999, allow_nan=False))
def test_a_percentage_below_one_is_never_shown_as_100(ratio: float) -> None:
    assert not format_percent(ratio).startswith("100")


def test_language_by_query_then_cookie_then_accept_language_french_by_default() -> None:
    assert pick_lang(None, None, None) == "fr"
    assert pick_lang(None, None, "en-US,en;q=0.9") == "en"
    assert pick_lang(None, None, "de-DE,de;q=0.9") == "fr"
    assert pick_lang(None, None, "de-DE,en;q=0.5") == "en"
    assert pick_lang(None, "fr", "en-US") == "fr"
    assert pick_lang("en", "fr", "fr-FR") == "en"
    assert pick_lang("xx", "en", None) == "en"  # an unknown ?lang= is ignored, not an error


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        ("en;q=0.1, fr;q=0.9", "fr"),  # the weights, not the order, say which is preferred
        ("fr;q=0.2, en;q=0.8", "en"),
        ("en-GB;q=0.5, fr-CA", "fr"),  # no weight is 1
        ("en;q=0, fr;q=0.1", "fr"),  # q=0: not acceptable
        ("en;q=0", "fr"),
        ("de, en;q=0.7, fr;q=0.7", "en"),  # equal weights: the order given
        ("EN;Q=0.9, fr;q=0.3", "en"),  # case-insensitive
        ("en;q=abc, fr;q=0.5", "fr"),  # a malformed weight is not a preference
        ("en;q=1.5, fr;q=0.5", "fr"),  # nor is one above 1
        ("*;q=0.5, en;q=0.4", "en"),
        ("", "fr"),
        (",,;;q=,", "fr"),
    ],
)
def test_accept_language_weights_are_honoured(header: str, lang: Lang) -> None:
    assert pick_lang(None, None, header) == lang
