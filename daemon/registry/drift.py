"""A token's clock rate from its drift history, and when it will cross the threshold.

Each clock write starts a new segment (the offset jumps, the rate does not), so the
rate is the pooled least-squares slope over all segments, each with its own offset;
the current segment's fit gives today's drift and the crossing time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tokenstation.daemon.registry.store import DriftPoint

DAY_S = 86400.0
#: Below this much history (across segments) a rate would be noise, not a measurement.
MIN_SPAN_S = 3600.0


@dataclass(frozen=True)
class DriftRate:
    """Seconds gained (+) or lost (-) per day, and the forecast from it."""

    seconds_per_day: float
    ppm: float
    points: int
    span_days: float
    drift_now_s: float
    crosses_at: float | None  # UTC time the threshold is (or was) crossed; None: never

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form."""
        return {
            "seconds_per_day": round(self.seconds_per_day, 3),
            "ppm": round(self.ppm, 2),
            "points": self.points,
            "span_days": round(self.span_days, 2),
            "drift_now_s": round(self.drift_now_s, 1),
            "crosses_threshold_at": self.crosses_at,
        }


def segments(points: Sequence[DriftPoint], clock_writes: Sequence[float]) -> list[list[DriftPoint]]:
    """Split history at each clock write; empty segments are dropped."""
    cuts = sorted(clock_writes)
    out: list[list[DriftPoint]] = [[]]
    i = 0
    for p in sorted(points, key=lambda p: p.at):
        while i < len(cuts) and p.at >= cuts[i]:
            out.append([])
            i += 1
        out[-1].append(p)
    return [s for s in out if s]


def estimate_rate(
    points: Sequence[DriftPoint],
    clock_writes: Sequence[float],
    threshold_s: float,
    now: float,
) -> DriftRate | None:
    """The rate and forecast, or None while the history is too short to tell."""
    segs = [s for s in segments(points, clock_writes) if len(s) >= 2]
    if not segs:
        return None
    span = sum(s[-1].at - s[0].at for s in segs)
    if span < MIN_SPAN_S:
        return None
    sxy = sxx = 0.0
    for seg in segs:
        mt = sum(p.at for p in seg) / len(seg)
        md = sum(p.drift_s for p in seg) / len(seg)
        sxy += sum((p.at - mt) * (p.drift_s - md) for p in seg)
        sxx += sum((p.at - mt) ** 2 for p in seg)
    if sxx <= 0:
        return None
    slope = sxy / sxx  # seconds of drift per second of time
    last = segments(points, clock_writes)[-1]
    mt = sum(p.at for p in last) / len(last)
    md = sum(p.drift_s for p in last) / len(last)
    drift_now = md + slope * (now - mt)
    return DriftRate(
        seconds_per_day=slope * DAY_S,
        ppm=slope * 1e6,
        points=sum(len(s) for s in segs),
        span_days=span / DAY_S,
        drift_now_s=drift_now,
        crosses_at=_crossing(drift_now, slope, threshold_s, now),
    )


def _crossing(drift_now: float, slope: float, threshold_s: float, now: float) -> float | None:
    if abs(drift_now) > threshold_s:
        return now  # already beyond
    if slope == 0 or math.isclose(slope, 0.0, abs_tol=1e-12):
        return None
    target = threshold_s if slope > 0 else -threshold_s
    return now + (target - drift_now) / slope
