"""French-first formats: Paris time in 24 h, French dates and numbers, language choice."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.i18n import Lang, format_date, format_datetime, format_percent, format_short, format_since, pick_lang

WINTER = datetime(2024, 2, 12, 12, 0, tzinfo=UTC)  # 13:00 in Paris (UTC+1)
SUMMER = datetime(2024, 7, 1, 12, 0, tzinfo=UTC)  # 14:00 in Paris (UTC+2)


def test_dates_are_told_in_paris_time_24_h_with_french_words() -> None:
    assert format_datetime(WINTER) == "lundi 12 février 2024 à 13:00"
    assert format_datetime(SUMMER, "en") == "Monday 1 July 2024, 14:00"
    assert format_datetime(SUMMER) == "lundi 1er juillet 2024 à 14:00"
    assert format_datetime(datetime(2024, 2, 12, 23, 30, tzinfo=UTC)) == "mardi 13 février 2024 à 00:30"
    assert format_datetime(None) == "—"
    assert format_date(WINTER) == "lundi 12 février 2024"
    assert format_date(date(2024, 3, 1), "en") == "Friday 1 March 2024"
    assert format_short(WINTER) == "12/02/2024 13:00"
    assert format_short(WINTER, "en") == "12 Feb 2024 13:00"


def test_since_omits_the_current_year_only() -> None:
    assert format_since(WINTER, SUMMER) == "12/02 13:00"
    assert format_since(WINTER, SUMMER, "en") == "12 Feb 13:00"
    assert format_since(WINTER, datetime(2025, 1, 1, tzinfo=UTC)) == "12/02/2024 13:00"
    # New Year's Eve 23:30 UTC is already next year in Paris
    assert format_since(datetime(2024, 12, 31, 23, 30, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC)) == "01/01 00:30"


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
