"""Durations: parsed from the config and the CLI, shown in notices, summaries and the page."""

import pytest

from selfheal.durations import COARSE, DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0ms"),
        (0.0215, "22ms"),  # half a millisecond rounds as seconds * 1000 does
        (0.1195, "120ms"),
        (0.999, "999ms"),
        (1, "1s"),
        (59.94, "59.9s"),
        (119.9, "120s"),
        (120, "2m"),
        (900, "15m"),
        (7199, "120m"),
        (7200, "2h"),
        (86400, "24h"),
    ],
)
def test_notices_and_summaries_show_three_significant_digits(seconds: float, shown: str) -> None:
    assert format_duration(seconds) == shown


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0s"),
        (119, "119s"),
        (120, "2m"),
        (5399, "90m"),
        (5400, "1.5h"),
        (172799, "48.0h"),
        (172800, "2.0d"),
        (30 * 86400, "30.0d"),
    ],
)
def test_the_page_shows_whole_seconds_and_minutes_then_tenths(seconds: float, shown: str) -> None:
    assert format_duration(seconds, COARSE) == shown


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("1h30m", 5400), (60, 60)]
)
def test_parse(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "-5", "inf"])
def test_a_bad_duration_is_one_clear_error(bad: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(bad)
