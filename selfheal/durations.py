"""Human durations ("90s", "15m", "1h30m", 60) as seconds."""

import re

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_WHOLE = re.compile(r"(?:\s*\d+(?:\.\d+)?\s*(?:ms|s|m|h|d)\s*)+")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class DurationError(ValueError):
    pass


def parse_duration(value: str | float | int) -> float:
    """Seconds in ``value``; a bare number is seconds. Negative or unparseable values raise."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise DurationError(f"not a duration: {value!r}")
    if isinstance(value, str):
        text = value.strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            if not _WHOLE.fullmatch(text):
                raise DurationError(
                    f"not a duration: {value!r} (use seconds or e.g. 90s, 15m, 1h)"
                ) from None
            seconds = sum(float(n) * _UNIT[u] for n, u in _PART.findall(text))
    else:
        seconds = float(value)
    if seconds < 0 or seconds != seconds or seconds == float("inf"):
        raise DurationError(f"a duration must be a finite, non-negative time: {value!r}")
    return seconds


# A scale for showing a duration: rows of (below this many seconds, multiply by, divide by, the
# suffix, the number's format); the first row whose bound the duration is under is taken, the last
# otherwise. Milliseconds multiply, minutes and hours divide: each is exact where it can be.
Scale = tuple[tuple[float, int, int, str, str], ...]

# Notices, summaries and the UI: three significant digits.
PRECISE: Scale = (
    (1, 1000, 1, "ms", ".0f"),
    (120, 1, 1, "s", ".3g"),
    (7200, 1, 60, "m", ".3g"),
    (float("inf"), 1, 3600, "h", ".3g"),
)
# The health page and `selfheal status`: whole seconds and minutes, tenths of hours and days.
COARSE: Scale = (
    (120, 1, 1, "s", ".0f"),
    (5400, 1, 60, "m", ".0f"),
    (172800, 1, 3600, "h", ".1f"),
    (float("inf"), 1, 86400, "d", ".1f"),
)


def format_duration(seconds: float, scale: Scale = PRECISE) -> str:
    _, times, per, suffix, spec = next((row for row in scale if seconds < row[0]), scale[-1])
    return f"{seconds * times / per:{spec}}{suffix}"
