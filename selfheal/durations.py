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


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 120:
        return f"{seconds:.3g}s"
    if seconds < 7200:
        return f"{seconds / 60:.3g}m"
    return f"{seconds / 3600:.3g}h"
