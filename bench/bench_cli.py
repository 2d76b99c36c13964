"""Command start-up as users start it: the console script beside `python -c pass`.

Runs, interleaved round by round, on the same interpreter (the venv's python):

- ``python -c pass``                        the floor: the interpreter alone
- ``tokenstation --help``
- ``tokenstation status --json``, no daemon: (a) no session bus in the environment,
  (b) a private dbus-daemon with no tokenstation daemon on it (asked over D-Bus)
- ``tokenstation scan one.png --json``      one enrolment QR (drawn with segno)
- ``python -c "import PIL.Image, ..."``     what scan cannot do without: Pillow with its
  PNG plugin, zxing-cpp, json, urllib.parse and pathlib, imported and left at once
  (as scan leaves): the part of scan's time that is the libraries'

and prints medians and ratios to the floor, in wall-clock and in CPU time (user +
system, steadier on a shared machine); JSON with --json FILE.

    .venv/bin/python bench/bench_cli.py --reps 30 [--old DIR] --json bench/results-cli.json

``--old DIR`` adds each tokenstation case on the code in DIR (a folder holding a
``tokenstation`` package, first on PYTHONPATH; see bench_burnpath.py), interleaved in
the same rounds: old and new side by side.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import machine, report, summary

from tokenstation.daemon.simulator.privatebus import PrivateBus

VENV_BIN = Path(sys.executable).parent
LIBRARIES = (
    "import os, PIL.Image, PIL.PngImagePlugin, zxingcpp, json, urllib.parse, pathlib; os._exit(0)"
)
LOAD_BEFORE = list(os.getloadavg())
SCRIPT = str((VENV_BIN / "tokenstation").resolve())


def _qr(folder: Path) -> Path:
    import segno

    path = folder / "one.png"
    segno.make(
        "otpauth://totp/Bitbucket:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Bitbucket",
        error="m",
    ).save(str(path), scale=6, border=4)
    return path


def _run_once(cmd: list[str], env: dict[str, str], expect: int) -> tuple[float, float]:
    """(wall ms, CPU ms) of one run; CPU time (user + system) is what the command itself
    costs, and holds steady when other work shares the machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, check=False)
    elapsed = (time.perf_counter() - t0) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != expect:
        raise SystemExit(f"{cmd}: exit {done.returncode}, expected {expect}: {done.stderr!r}")
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return elapsed, cpu


def main() -> int:
    """Measure and report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--json", type=Path, metavar="FILE")
    ap.add_argument("--old", metavar="DIR", help="also run the commands on this code")
    opts = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    png = _qr(work)
    # As installed: bytecode cached (pip and dpkg compile it), no session bus in the shell.
    drop = ("DBUS_SESSION_BUS_ADDRESS", "PYTHONDONTWRITEBYTECODE")
    base = {k: v for k, v in os.environ.items() if k not in drop}
    base.update(HOME=str(work), XDG_RUNTIME_DIR=str(work))
    bus = PrivateBus().start()
    try:
        with_bus = {**base, "DBUS_SESSION_BUS_ADDRESS": bus.address}
        cases: dict[str, tuple[list[str], dict[str, str], int]] = {
            "python -c pass": ([sys.executable, "-c", "pass"], base, 0),
            "tokenstation --help": ([SCRIPT, "--help"], base, 0),
            "tokenstation status --json (no session bus)": ([SCRIPT, "status", "--json"], base, 3),
            "tokenstation status --json (bus, no daemon)": (
                [SCRIPT, "status", "--json"],
                with_bus,
                3,
            ),
            "tokenstation scan one.png --json": ([SCRIPT, "scan", str(png), "--json"], base, 0),
            "python: scan's libraries alone": ([sys.executable, "-c", LIBRARIES], base, 0),
        }
        if opts.old:
            cases.update(
                {
                    f"[old] {name}": (cmd, {**env, "PYTHONPATH": opts.old}, expect)
                    for name, (cmd, env, expect) in list(cases.items())
                    if name.startswith("tokenstation")
                }
            )
        wall: dict[str, list[float]] = {name: [] for name in cases}
        cpu: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(3):  # warm-up: page cache, .pyc files written
            for cmd, env, expect in cases.values():
                _run_once(cmd, env, expect)
        for _ in range(opts.reps):
            for name, (cmd, env, expect) in cases.items():
                w, c = _run_once(cmd, env, expect)
                wall[name].append(w)
                cpu[name].append(c)
    finally:
        bus.stop()
    floor = summary(wall["python -c pass"])["median"]
    cpu_floor = summary(cpu["python -c pass"])["median"]
    rows = {}
    for name in cases:
        w, c = summary(wall[name]), summary(cpu[name])
        rows[name] = {
            "wall_ms": w,
            "wall_ratio": round(w["median"] / floor, 2),
            "cpu_ms": c,
            "cpu_ratio": round(c["median"] / cpu_floor, 2),
        }
    result = {
        **machine(),
        "interpreter": sys.executable,
        "command": "tokenstation as the console script " + SCRIPT,
        "load_average_before": LOAD_BEFORE,
        "load_average_after": list(os.getloadavg()),
        "results": rows,
    }
    report(result, opts.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
