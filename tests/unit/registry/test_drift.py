"""A token's drift rate and forecast from its history (daemon/registry/drift.py)."""

from __future__ import annotations

import pytest

from tokenstation.daemon.registry.drift import estimate_rate
from tokenstation.daemon.registry.store import DriftPoint

DAY = 86400.0


def _points(start: float, offset: float, rate_s_per_day: float, days: int) -> list[DriftPoint]:
    return [
        DriftPoint(start + d * DAY, offset + rate_s_per_day * d, 0.01, "rollover")
        for d in range(days)
    ]


def test_rate_and_threshold_crossing_are_forecast() -> None:
    t0 = 1_800_000_000.0
    pts = _points(t0, 0.0, 0.25, 5)  # +0.25 s/day, now at +1.0 s after 4 days
    rate = estimate_rate(pts, [], 2.0, t0 + 4 * DAY)
    assert rate is not None
    assert rate.seconds_per_day == pytest.approx(0.25)
    assert rate.ppm == pytest.approx(0.25 / DAY * 1e6)
    assert rate.crosses_at == pytest.approx(t0 + 8 * DAY)  # 1.0 more second at 0.25/day


def test_clock_writes_split_the_history_but_not_the_rate() -> None:
    t0 = 1_800_000_000.0
    before = _points(t0, 30.0, -0.5, 3)  # 30 s fast, losing 0.5 s/day
    write = t0 + 3 * DAY
    after = _points(write + 1, 0.0, -0.5, 3)
    rate = estimate_rate(before + after, [write], 2.0, write + 2 * DAY)
    assert rate is not None
    assert rate.seconds_per_day == pytest.approx(-0.5)
    assert rate.drift_now_s == pytest.approx(-1.0, abs=0.01)
    assert rate.crosses_at == pytest.approx(write + 4 * DAY, abs=60)


def test_too_little_history_gives_no_rate() -> None:
    t0 = 1_800_000_000.0
    assert estimate_rate([DriftPoint(t0, 1.0, 0.01, "rollover")], [], 2.0, t0) is None
    close = [DriftPoint(t0, 1.0, 0.01, "r"), DriftPoint(t0 + 60, 1.0, 0.01, "r")]
    assert estimate_rate(close, [], 2.0, t0 + 60) is None
