"""A token's drift history as a picture (matplotlib): the one module that imports it.

Readings with their uncertainty, the clock writes, the threshold band, the fitted rate
through each stretch between clock writes and, on the last one, the forecast crossing of
the threshold. PNG or SVG, by the file's suffix. Only `tokenstation tokens --plot`
imports this; the daemon never does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from matplotlib import rc_context
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure

#: File suffix -> matplotlib format.
FORMATS = {".png": "png", ".svg": "svg"}
POINT, BAND, WRITE, FIT, FORECAST = "#1f5fbf", "#fbe7c6", "#c0392b", "#555555", "#8e44ad"


def _when(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _days(t: float) -> float:
    """A UTC time as matplotlib's date axis counts it (days since its 1970 epoch)."""
    return float(date2num(_when(t)))  # type: ignore[no-untyped-call]


def _segments(history: list[dict[str, Any]], writes: list[float]) -> list[list[dict[str, Any]]]:
    """The readings split at each clock write (as the rate's fit splits them)."""
    out: list[list[dict[str, Any]]] = [[]]
    cuts = sorted(writes)
    i = 0
    for p in sorted(history, key=lambda p: float(p["at"])):
        while i < len(cuts) and p["at"] >= cuts[i]:
            out.append([])
            i += 1
        out[-1].append(p)
    return [s for s in out if s]


def plot_drift(token: dict[str, Any], out: Path) -> None:
    """Draw ``token`` (a registry view with ``history``, ``operations``, ``rate``) to
    ``out``, whose suffix (.png or .svg) picks the format. ValueError: nothing to draw or
    an unknown suffix; OSError: the file cannot be written."""
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise ValueError(f"{out.name}: the plot is drawn as .png or .svg, not {out.suffix!r}")
    history: list[dict[str, Any]] = sorted(token.get("history", []), key=lambda p: p["at"])
    if not history:
        raise ValueError(f"token {token.get('serial')} has no drift readings to plot")
    ops = [
        op
        for op in token.get("operations", [])
        if op.get("outcome") == "ok" and op.get("kind") in ("sync", "burn")  # clock writes
    ]
    writes = [float(op["at"]) for op in ops]
    thr = float(token.get("threshold_s", 2.0))
    rate: dict[str, Any] | None = token.get("rate")

    fig = Figure(figsize=(9, 4.5), dpi=100, layout="constrained")
    ax = fig.subplots()
    ax.axhspan(-thr, thr, color=BAND, zorder=0, label=f"within the ±{thr:g} s threshold")
    ax.axhline(0, color="#999999", linewidth=0.8, zorder=1)
    for n, op in enumerate(ops):
        ax.axvline(
            _days(float(op["at"])),
            color=WRITE,
            linewidth=1.5,
            zorder=2,
            label="clock set by this station (sync or burn)" if n == 0 else None,
        )
    ax.errorbar(
        [_days(float(p["at"])) for p in history],
        [float(p["drift_s"]) for p in history],
        yerr=[float(p["uncertainty_s"]) for p in history],
        fmt="o",
        markersize=4,
        color=POINT,
        ecolor=POINT,
        elinewidth=1,
        capsize=3,
        zorder=4,
        label="readings (± uncertainty)",
    )
    t_end = max([float(p["at"]) for p in history] + writes)
    if rate:
        t_end = _fits(ax, _segments(history, writes), rate=rate, thr=thr, t_end=t_end)
    t_start = min([float(p["at"]) for p in history] + writes)
    if t_end - t_start < 60:  # a single reading: a minute either side
        t_start, t_end = t_start - 60, t_end + 60
    pad = (t_end - t_start) * 0.03
    ax.set_xlim(_days(t_start - pad), _days(t_end + pad))
    reach = max(abs(float(p["drift_s"])) + float(p["uncertainty_s"]) for p in history)
    top = 1.15 * max(thr * 1.5, reach)
    ax.set_ylim(-top, top)

    ax.xaxis_date(tz=UTC)
    locator = AutoDateLocator(tz=UTC)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    formatter = ConciseDateFormatter(  # type: ignore[no-untyped-call]
        locator,
        tz=UTC,
        formats=["%Y", "%b", "%b %d", "%H:%M", "%H:%M", "%H:%M:%S"],  # days with their month
        offset_formats=["", "%Y", "%Y", "%Y-%m-%d", "%Y-%m-%d", "%Y-%m-%d %H:%M"],
    )
    ax.xaxis.set_major_formatter(formatter)
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel("drift: token minus host (s)")
    ax.grid(True, color="#e4e4e4", zorder=0)
    title = f"Token {token.get('serial')} ({token.get('model')})"
    if rate:
        title += f": {rate['seconds_per_day']:+.2f} s/day ({rate['ppm']:+.1f} ppm)"
    else:
        title += ": rate not known yet (needs readings over an hour or more)"
    ax.set_title(title, loc="left", fontsize=11)
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "tokenstation"}):  # text as text
        fig.savefig(out, format=fmt, metadata=_metadata(fmt))


def _fits(
    ax: Any, segs: list[list[dict[str, Any]]], *, rate: dict[str, Any], thr: float, t_end: float
) -> float:
    """The fitted rate through each stretch between clock writes and the forecast on the
    last one; the plot's new right end."""
    slope = float(rate["seconds_per_day"]) / 86400.0
    for n, seg in enumerate(segs):
        mt = sum(float(p["at"]) for p in seg) / len(seg)
        md = sum(float(p["drift_s"]) for p in seg) / len(seg)
        a, b = float(seg[0]["at"]), float(seg[-1]["at"])
        ax.plot(
            [_days(a), _days(b)],
            [md + slope * (a - mt), md + slope * (b - mt)],
            color=FIT,
            linewidth=1.5,
            zorder=3,
            label=f"fitted rate {rate['seconds_per_day']:+.2f} s/day" if n == 0 else None,
        )
    if not slope:
        return t_end
    # Where the last stretch's fitted line meets the threshold: the registry's forecast
    # (`tokens` gives the same time), drawn ahead of the readings when still to come.
    last = segs[-1]
    mt = sum(float(p["at"]) for p in last) / len(last)
    md = sum(float(p["drift_s"]) for p in last) / len(last)
    edge = thr if slope > 0 else -thr
    crosses = mt + (edge - md) / slope
    a, b = float(last[0]["at"]), float(last[-1]["at"])
    if crosses < a:
        ax.plot([], [], " ", label=f"beyond {edge:+g} s since the last clock write")
        return t_end
    forecast = rate.get("crosses_threshold_at")
    if forecast is not None and float(forecast) > b:
        crosses = float(forecast)  # the registry's own (unrounded slope), as `tokens` says
    if crosses > b:
        ax.plot(
            [_days(b), _days(crosses)],
            [md + slope * (b - mt), edge],
            color=FIT,
            linewidth=1.2,
            linestyle="--",
            zorder=3,
            label="forecast at that rate",
        )
    verb = "crosses" if crosses > b else "crossed"
    ax.plot(
        [_days(crosses)],
        [edge],
        marker="D",
        markersize=7,
        color=FORECAST,
        linestyle="none",
        zorder=5,
        label=f"{verb} {edge:+g} s: {_when(crosses):%Y-%m-%d %H:%M} UTC",
    )
    return max(t_end, crosses)


def _metadata(fmt: str) -> dict[str, Any]:
    """No software version or creation date in the file: the same history, the same bytes."""
    return {"Software": None} if fmt == "png" else {"Date": None, "Creator": None}
