"""Small statistics for benchmark figures: medians, percentiles, and a median over repeated runs.

Percentiles use linear interpolation between closest ranks (numpy's default), so p50 of an even
sample is the mean of its two middle values and p99 of a short sample is close to its maximum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of `values`; NaN for an empty sample."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, or NaN when the denominator is zero or not a number."""
    if not denominator or math.isnan(denominator):
        return math.nan
    return numerator / denominator


def ms(seconds: float) -> float:
    """Seconds to milliseconds, rounded to 0.01 ms for the report."""
    return round(seconds * 1000, 2)


def spread(values: Sequence[float], digits: int = 2) -> dict[str, float | None]:
    """min, median and max of per-run figures (rounded; None when no run gave a number): how a
    gated figure is recorded and judged (on its median), so one lucky or unlucky run decides nothing."""
    kept = [v for v in values if not math.isnan(v)]
    if not kept:
        return {"min": None, "median": None, "max": None}
    return {
        "min": round(min(kept), digits),
        "median": round(median(kept), digits),
        "max": round(max(kept), digits),
    }
