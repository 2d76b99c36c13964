"""A token's drift history as a PNG (Pillow): readings, threshold band, clock writes, trend."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

W, H = 900, 420
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 40, 50
BG, AXIS, GRID = (255, 255, 255), (40, 40, 40), (225, 225, 225)
POINT, BAND, WRITE, TREND = (30, 90, 200), (255, 235, 200), (200, 60, 60), (120, 120, 120)


def plot_drift(token: dict[str, Any], out: Path) -> None:
    """Draw ``token`` (a registry view with ``history`` and ``operations``) to ``out``."""
    history = token.get("history", [])
    if not history:
        raise ValueError(f"token {token.get('serial')} has no drift readings to plot")
    writes = [op["at"] for op in token.get("operations", []) if op.get("outcome") == "ok"]
    thr = float(token.get("threshold_s", 2.0))
    t0 = min(p["at"] for p in history)
    t1 = max([p["at"] for p in history] + writes)
    if t1 - t0 < 60:
        t1 = t0 + 60
    if token.get("rate"):
        t1 += (t1 - t0) * 0.25  # room for the trend
    values = [p["drift_s"] for p in history]
    reach = max(abs(v) + p["uncertainty_s"] for v, p in zip(values, history, strict=True))
    vmax = 1.15 * max(thr * 1.5, reach)  # a margin above the farthest reading
    img = Image.new("RGB", (W, H), BG)
    d = ImageDraw.Draw(img)

    def x(t: float) -> float:
        return float(LEFT + (t - t0) / (t1 - t0) * (W - LEFT - RIGHT))

    def y(v: float) -> float:
        return float(TOP + (vmax - v) / (2 * vmax) * (H - TOP - BOTTOM))

    d.rectangle([LEFT, y(thr), W - RIGHT, y(-thr)], fill=BAND)
    for frac in (-1.0, -0.5, 0.0, 0.5, 1.0):
        v = frac * vmax
        d.line([LEFT, y(v), W - RIGHT, y(v)], fill=AXIS if frac == 0 else GRID)
        d.text((5, y(v) - 6), f"{v:+.1f} s", fill=AXIS)
    for i in range(5):
        t = t0 + (t1 - t0) * i / 4
        d.line([x(t), TOP, x(t), H - BOTTOM], fill=GRID)
        label = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M")
        anchor = "la" if i == 0 else ("ra" if i == 4 else "ma")
        d.text((x(t), H - BOTTOM + 8), label, fill=AXIS, anchor=anchor)
    for t in writes:
        d.line([x(t), TOP, x(t), H - BOTTOM], fill=WRITE, width=2)
    rate = token.get("rate")
    if rate and history:
        last = history[-1]
        slope = rate["seconds_per_day"] / 86400.0
        t_end = t1
        if slope:  # stop the trend where it leaves the plot
            edge = vmax if slope > 0 else -vmax
            t_end = min(t1, last["at"] + (edge - last["drift_s"]) / slope)
        end = last["drift_s"] + slope * (t_end - last["at"])
        d.line([x(last["at"]), y(last["drift_s"]), x(t_end), y(end)], fill=TREND, width=2)
    for p in history:
        px, py = x(p["at"]), y(p["drift_s"])
        err = max(p["uncertainty_s"] / (2 * vmax) * (H - TOP - BOTTOM), 0)
        d.line([px, py - err, px, py + err], fill=POINT)
        d.ellipse([px - 3, py - 3, px + 3, py + 3], fill=POINT)
    title = f"Token {token.get('serial')} ({token.get('model')}): drift, token minus host"
    if rate:
        title += f"; {rate['seconds_per_day']:+.2f} s/day ({rate['ppm']:+.1f} ppm)"
    d.text((LEFT, 12), title, fill=AXIS)
    d.text(
        (LEFT, H - 18),
        f"shaded: within ±{thr:g} s threshold; red lines: clock set by this station",
        fill=AXIS,
    )
    img.save(out, "PNG")
