"""The daemon on the real stack: insertion-to-signal latency, idle CPU and memory.

Starts a private pcscd + vpcd, a private dbus-daemon, `tokenstation daemon` and one
`tokenstation simulate` process, then places the token on the reader ``--reps``
times (SIGUSR2 takes it off and puts it back) and times, per placement:

- our own time: from the PC/SC card-inserted event reaching the daemon (stamped in
  the daemon as ``event_at``) to the TokenPresented signal arriving at a D-Bus client;
  vpcd's own 400 ms reader poll happens before that event and is not ours;
- TokenMeasured: the same, to the precise (rollover-timed) drift, which waits for
  the token's seconds to tick and so takes up to a second by design.

Then it leaves the daemon idle for ``--idle`` seconds and reads its CPU time and RSS
from /proc.

    .venv/bin/python bench/bench_daemon.py [--reps 20] [--idle 60] [--old DIR] [--json FILE]

``--old DIR`` runs the same first with the daemon on the code in DIR (a folder holding
a ``tokenstation`` package, first on PYTHONPATH; see bench_burnpath.py). ``--rounds N``
runs old and new N times each, the order swapped every round (old-new, new-old, ...),
so neither gains from going first on a shared machine; the latencies are pooled per code.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import (
    machine,
    proc_cpu_s,
    proc_mem_mb,
    report,
    running_daemon,
    summary,
    wait_until_measured,
)

from tokenstation.daemon.bus.client import StationClient


def wait_for_daemon(address: str, timeout: float = 20.0) -> None:
    """Until the daemon owns its bus name."""
    from tokenstation.daemon.bus import dbusio
    from tokenstation.daemon.bus.names import BUS_NAME

    async def owned() -> bool:
        bus = await dbusio.connect("session", address)
        try:
            return await dbusio.name_has_owner(bus, BUS_NAME)
        finally:
            await dbusio.disconnect(bus)

    deadline = time.monotonic() + timeout
    while not asyncio.run(owned()):
        if time.monotonic() > deadline:
            raise RuntimeError("the daemon did not start")
        time.sleep(0.1)


async def wait_signal(
    got: list[tuple[float, str, dict[str, Any]]], name: str, since: int, timeout: float = 10.0
) -> tuple[float, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for t, n, p in got[since:]:
            if n == name:
                return t, p
        await asyncio.sleep(0.002)
    raise RuntimeError(f"no {name} within {timeout} s")


async def measure(address: str, sim: subprocess.Popen[bytes], reps: int) -> dict[str, list[float]]:
    got: list[tuple[float, str, dict[str, Any]]] = []
    client = await StationClient.connect("session", address)
    await client.subscribe(lambda n, p: got.append((time.time(), n, p)))
    presented_ms: list[float] = []
    measured_ms: list[float] = []
    # The first placement is the warm-up; it may have been measured before we subscribed.
    await wait_until_measured(client)
    for _ in range(reps):
        mark = len(got)
        sim.send_signal(signal.SIGUSR2)  # off the reader
        await wait_signal(got, "TokenRemoved", mark)
        mark = len(got)
        sim.send_signal(signal.SIGUSR2)  # back on
        t_presented, p = await wait_signal(got, "TokenPresented", mark)
        t_measured, _ = await wait_signal(got, "TokenMeasured", mark)
        presented_ms.append((t_presented - float(p["event_at"])) * 1000)
        measured_ms.append((t_measured - float(p["event_at"])) * 1000)
    await client.close()
    return {"presented_ms": presented_ms, "measured_ms": measured_ms}


def run_once(args: argparse.Namespace, old: str | None) -> dict[str, Any]:
    """One daemon (``old``: on the code in that PYTHONPATH folder), measured."""
    work = Path(tempfile.mkdtemp(prefix="ts-bench-daemon-"))
    extra = {"PYTHONPATH": old} if old else None
    with running_daemon(work, 2, "--log-level", "warning", extra_env=extra) as daemon:
        address = daemon.bus.address
        os.environ["PCSCLITE_CSOCK_NAME"] = str(daemon.stack.socket_path)
        wait_for_daemon(address)
        sim = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tokenstation.daemon",
                "simulate",
                "--port",
                str(daemon.stack.port(0)),
                "--clock-offset",
                "37.4",
            ],
            env=daemon.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(1.0)
            lat = asyncio.run(measure(address, sim, args.reps))
            sim.send_signal(signal.SIGTERM)
            sim.wait(5)
            time.sleep(2.0)  # let the removal settle
            cpu0, t0 = proc_cpu_s(daemon.proc.pid), time.monotonic()
            time.sleep(args.idle)
            cpu1, t1 = proc_cpu_s(daemon.proc.pid), time.monotonic()
            rss, hwm = proc_mem_mb(daemon.proc.pid)
        finally:
            if sim.poll() is None:
                sim.send_signal(signal.SIGTERM)
                sim.wait(10)
    return {
        "code": f"old ({old})" if old else "this tree",
        "presented_ms": lat["presented_ms"],
        "measured_ms": lat["measured_ms"],
        "insert_to_token_presented_ms": summary(lat["presented_ms"]),
        "insert_to_token_measured_ms": summary(lat["measured_ms"]),
        "idle_seconds": round(t1 - t0, 1),
        "idle_cpu_percent": round(100 * (cpu1 - cpu0) / (t1 - t0), 3),
        "idle_cpu_s": round(cpu1 - cpu0, 3),
        "rss_mb": round(rss, 1),
        "peak_rss_mb": round(hwm, 1),
    }


def pooled(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One code's rounds as one result: latencies pooled, idle figures of each round."""
    presented = [x for r in runs for x in r["presented_ms"]]
    measured = [x for r in runs for x in r["measured_ms"]]
    keys = ("idle_cpu_percent", "rss_mb", "peak_rss_mb")
    return {
        "code": runs[0]["code"],
        "rounds": len(runs),
        "insert_to_token_presented_ms": summary(presented),
        "insert_to_token_measured_ms": summary(measured),
        **{k: [r[k] for r in runs] for k in keys},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--idle", type=float, default=60.0)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--old", metavar="DIR", help="run the same first on this code")
    ap.add_argument("--rounds", type=int, default=1, help="old and new this many times each")
    args = ap.parse_args()
    codes: list[str | None] = [args.old, None] if args.old else [None]
    runs: dict[str | None, list[dict[str, Any]]] = {c: [] for c in codes}
    for n in range(args.rounds):
        for code in codes if n % 2 == 0 else codes[::-1]:
            runs[code].append(run_once(args, code))
    result: dict[str, Any] = {**machine(), **pooled(runs[None])}
    if args.old:
        result["runs"] = [pooled(runs[c]) for c in codes]
        result["each_round"] = [
            {k: v for k, v in r.items() if k not in ("presented_ms", "measured_ms")}
            for c in codes
            for r in runs[c]
        ]
    report(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
