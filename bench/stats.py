"""The one statistics helper of the benchmarks: a nearest-rank percentile (the value below which
p % of the samples lie, always one of the samples) and a one-line distribution."""

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest rank: the ceil(p/100 * n)-th smallest value (p=50 the median's lower neighbour,
    p=100 the maximum). ``ValueError`` on no values or p outside 0..100."""
    if not values:
        raise ValueError("no values")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile {p} is not within 0..100")
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def distribution(values: Sequence[float], scale: float = 1000.0, unit: str = "ms") -> str:
    """``p50 … p90 … p99 … max …`` of ``values`` times ``scale`` (seconds shown in ms)."""
    return "  ".join(
        f"{name} {percentile(values, p) * scale:7.1f} {unit}"
        for name, p in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))
    )
