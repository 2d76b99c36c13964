"""The drift plot: real time axes, readings with uncertainty, clock writes, the fitted
rate and the forecast crossing; PNG or SVG by suffix; bad paths as sentences."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tokenstation.daemon.registry.drift import estimate_rate
from tokenstation.daemon.registry.store import DriftPoint

pytest.importorskip("matplotlib")

from tokenstation.daemon.registry.plot import plot_drift

DAY = 86400.0
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC).timestamp()
RATE = 0.2  # s/day fast


def drifting_token() -> dict[str, Any]:
    """A C302-i read every two days for a month, 0.2 s/day fast, synced on day 20: the
    registry view `tokens SERIAL --json` gives (rate and forecast from the real fit)."""
    sync_at = START + 20.2 * DAY
    points = []
    for day in range(0, 29, 2):
        at = START + day * DAY + (day % 3) * 3600
        since = at - (sync_at if at > sync_at else START - 1.1 / RATE * DAY)
        wobble = ((day * 7) % 5 - 2) * 0.03
        precise = day % 4 == 0
        points.append(
            DriftPoint(
                at,
                RATE * since / DAY + wobble,
                0.012 if precise else 0.35,
                "precise" if precise else "single",
            )
        )
    now = points[-1].at + 3600
    rate = estimate_rate(points, [sync_at], 2.0, now)
    assert rate is not None
    return {
        "serial": "86596320000417",
        "model": "C302-i",
        "threshold_s": 2.0,
        "rate": rate.as_dict(),
        "history": [
            {"at": p.at, "drift_s": p.drift_s, "uncertainty_s": p.uncertainty_s} for p in points
        ],
        "operations": [
            {"at": sync_at, "kind": "sync", "outcome": "ok"},
            {"at": sync_at - 600, "kind": "sync", "outcome": "refused"},  # no clock write
        ],
    }


def test_svg_shows_dates_rate_forecast_and_uncertainty(tmp_path: Path) -> None:
    token = drifting_token()
    out = tmp_path / "drift.svg"
    plot_drift(token, out)
    svg = out.read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    words = " ".join(texts)
    # Real dates on the time axis, each tick different (not "02:08" three times).
    ticks = [t for t in texts if re.fullmatch(r"\d{1,2}|Nov|Dec|2026|2026-\w+|\w{3} \d+", t)]
    assert len(ticks) >= 3 and len(set(ticks)) == len(ticks), texts
    assert "Nov" in words or "2026-11" in words
    assert f"+{token['rate']['seconds_per_day']:.2f} s/day" in words
    assert abs(token["rate"]["seconds_per_day"] - RATE) < 0.05
    # The forecast is the registry's own: `tokens` says the same time.
    crossing = datetime.fromtimestamp(token["rate"]["crosses_threshold_at"], UTC)
    assert crossing.timestamp() > token["history"][-1]["at"]  # still to come
    assert f"crosses +2 s: {crossing:%Y-%m-%d %H:%M} UTC" in words
    assert "forecast at that rate" in words
    assert "readings (± uncertainty)" in words and "clock set by this station" in words
    assert "thisstation" not in words


def test_png_by_suffix_and_same_history_same_bytes(tmp_path: Path) -> None:
    a, b = tmp_path / "a.png", tmp_path / "B.PNG"
    plot_drift(drifting_token(), a)
    plot_drift(drifting_token(), b)
    assert a.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert a.read_bytes() == b.read_bytes()


def test_no_rate_yet_and_a_single_reading_still_draw(tmp_path: Path) -> None:
    token = drifting_token()
    token.pop("rate")
    token["history"] = token["history"][:1]
    token["operations"] = []
    out = tmp_path / "one.svg"
    plot_drift(token, out)
    assert "rate not known yet" in out.read_text()


def test_other_suffix_and_empty_history_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.png or \.svg, not '\.jpg'"):
        plot_drift(drifting_token(), tmp_path / "plot.jpg")
    assert not (tmp_path / "plot.jpg").exists()
    with pytest.raises(ValueError, match="no drift readings"):
        plot_drift({"serial": "1", "history": []}, tmp_path / "x.png")


@pytest.mark.parametrize(
    ("where", "first_line"),
    [
        ("plot.jpg", "does not end in .png or .svg"),
        ("missing/x.png", "there is no folder"),
        (".", "is a folder"),
        ("x.png/", "is a folder"),
    ],
)
def test_cli_bad_paths_are_sentences(tmp_path: Path, where: str, first_line: str) -> None:
    (tmp_path / "x.png").mkdir()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tokenstation.daemon",
            "tokens",
            "--plot",
            "86596320000417",
            str(tmp_path / where) if where != "." else str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "XDG_STATE_HOME": str(tmp_path),
            "XDG_CONFIG_HOME": str(tmp_path),
            "DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent",
        },
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert first_line in done.stderr.splitlines()[-1]
    assert "Error" not in done.stderr and "Traceback" not in done.stderr


def test_the_daemon_package_never_imports_matplotlib() -> None:
    """Only registry/plot.py imports it (the CLI imports that module when plotting)."""
    root = Path(__file__).resolve().parents[3] / "daemon"
    importers = sorted(
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if re.search(r"^\s*(from|import) matplotlib", p.read_text(), re.M)
    )
    assert importers == ["registry/plot.py"]
    plot_users = sorted(
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if "registry.plot import" in p.read_text() or "registry import plot" in p.read_text()
    )
    assert plot_users == ["cli/readout_cmds.py"]
