"""The tray process: drift signal to notification latency, idle CPU and memory.

Runs what the desktop end-to-end test runs (Xvfb, dunst, trayer, a private dbus-daemon,
pcscd + vpcd, the daemon, a simulated token 37.4 s fast), the tray started as its
autostart entry starts it (that entry's Exec line with this venv's tokenstation, as
`install-user-service` writes it; no GDK_GL, NO_AT_BRIDGE or PYSTRAY_BACKEND in its
environment: the tray chooses and sets them itself), and, in this process, one D-Bus
connection that both receives the daemon's TokenMeasured signal and monitors Notify
calls to dunst. Per placement
(SIGUSR2 takes the token off and puts it back): time from the signal to the Notify
call for it. Then the tray idles ``--idle`` seconds: CPU from /proc, RSS.

    .venv/bin/python bench/bench_tray.py [--reps 20] [--idle 60] [--json FILE] [--exe PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import machine, proc_cpu_s, proc_mem_mb, report, summary, wait_until_measured

from tokenstation.daemon.bus import dbusio
from tokenstation.daemon.bus.client import StationClient
from tokenstation.daemon.simulator.privatebus import PrivateBus, isolated_env
from tokenstation.daemon.simulator.stack import PcscStack
from tokenstation.daemon.units import desktop_exec, tray_autostart

DUNSTRC = (
    "[global]\n    markup = no\n[urgency_normal]\n    timeout = 0\n[urgency_low]\n    timeout = 0\n"
)


async def measure(address: str, sim: subprocess.Popen[bytes], reps: int) -> list[float]:
    measured: list[float] = []
    notified: list[float] = []
    watcher = await dbusio.connect("session", address)
    await dbusio.add_match(
        watcher, "type='signal',interface='org.tokenstation.TokenStation1',member='TokenMeasured'"
    )

    def on_signal(msg: Any) -> None:
        if msg.member == "TokenMeasured":
            measured.append(time.time())

    watcher.add_message_handler(on_signal)
    monitor = await dbusio.connect("session", address)

    def on_notify(msg: Any) -> bool:
        if msg.member == "Notify" and "37.4 s fast" in str(msg.body[4]):
            notified.append(time.time())
        return bool(msg.message_type == dbusio.MessageType.METHOD_CALL)

    monitor.add_message_handler(on_notify)
    await dbusio.call(
        monitor,
        "org.freedesktop.DBus",
        "/org/freedesktop/DBus",
        "org.freedesktop.DBus.Monitoring",
        "BecomeMonitor",
        "asu",
        [["type='method_call',interface='org.freedesktop.Notifications',member='Notify'"], 0],
    )

    async def wait(values: list[float], n: int) -> None:
        deadline = time.monotonic() + 15
        while len(values) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
        if len(values) < n:
            raise RuntimeError("timed out")

    # Wait until the first placement is measured: the simulator has its signal
    # handlers by then (SIGUSR2 would kill it before) and the tray has seen a token.
    await wait_until_measured(StationClient(watcher))
    latencies = []
    for i in range(reps + 1):  # the first cycle is a warm-up
        sim.send_signal(signal.SIGUSR2)  # off the reader
        await asyncio.sleep(1.5)
        marks = len(measured), len(notified)
        sim.send_signal(signal.SIGUSR2)  # back on
        await wait(measured, marks[0] + 1)
        await wait(notified, marks[1] + 1)
        if i:
            latencies.append((notified[marks[1]] - measured[marks[0]]) * 1000)
    watcher.disconnect()
    monitor.disconnect()
    return latencies


def autostart_command(exe: str) -> list[str]:
    """The tray's autostart command, with ``exe`` for /usr/bin/tokenstation."""
    return desktop_exec(tray_autostart(exe))


def tray_backend(log: Path) -> str:
    """The icon backend the tray chose, from its log."""
    found = re.search(r"tray icon backend (\S+)", log.read_text())
    return found.group(1) if found else "none"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--idle", type=float, default=60.0)
    ap.add_argument("--json", type=Path)
    ap.add_argument(
        "--exe",
        default=str(Path(sys.executable).parent / "tokenstation"),
        help="the tokenstation the autostart entry runs (default: this venv's)",
    )
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ts-bench-tray-"))
    (work / "dunstrc").write_text(DUNSTRC)
    bus = PrivateBus().start()
    stack = PcscStack(readers=2).start()
    env = isolated_env(stack.env(), bus.address, work)
    for name in ("GDK_GL", "NO_AT_BRIDGE", "PYSTRAY_BACKEND"):
        env.pop(name, None)
    procs: list[subprocess.Popen[bytes]] = []

    def start(*cmd: str, log_name: str = "") -> subprocess.Popen[bytes]:
        log = (work / f"{log_name or Path(cmd[0]).name}-{len(procs)}.log").open("w")
        p = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        procs.append(p)
        return p

    try:
        # A display number nobody uses (Xvfb picks it and writes it to the pipe).
        read_end, write_end = os.pipe()
        xvfb = ["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1024x640x24"]
        procs.append(
            subprocess.Popen(
                [*xvfb, "-nolisten", "tcp"],
                pass_fds=(write_end,),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            env["DISPLAY"] = ":" + pipe.readline().strip()
        start("dunst", "-config", str(work / "dunstrc"))
        start("trayer", "--edge", "bottom", "--align", "right", "--SetDockType", "true")
        time.sleep(0.5)
        py = sys.executable
        start(py, "-m", "tokenstation.daemon", "daemon", "--log-level", "warning")
        tray_log = work / f"tray-{len(procs)}.log"
        tray = start(*autostart_command(args.exe), log_name="tray")
        time.sleep(2.0)
        sim = start(
            py,
            "-m",
            "tokenstation.daemon",
            "simulate",
            "--port",
            str(stack.port(0)),
            "--clock-offset",
            "37.4",
        )
        latencies = asyncio.run(measure(bus.address, sim, args.reps))
        sim.send_signal(signal.SIGTERM)
        time.sleep(3.0)
        c0, t0 = proc_cpu_s(tray.pid), time.monotonic()
        time.sleep(args.idle)
        c1, t1 = proc_cpu_s(tray.pid), time.monotonic()
        rss, hwm = proc_mem_mb(tray.pid)
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        stack.cleanup()
        bus.stop()
    result = {
        **machine(),
        "signal_to_notify_ms": summary(latencies),
        "idle_seconds": round(t1 - t0, 1),
        "idle_cpu_percent": round(100 * (c1 - c0) / (t1 - t0), 3),
        "idle_cpu_s": round(c1 - c0, 3),
        "rss_mb": round(rss, 1),
        "peak_rss_mb": round(hwm, 1),
        "backend": tray_backend(tray_log),
        "started_as": " ".join(autostart_command(args.exe)),
        "dbus_library": dbusio.LIBRARY,
    }
    report(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
