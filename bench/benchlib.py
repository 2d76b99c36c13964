"""What the benchmark scripts share: the machine line, writing the result, /proc readings,
and starting the private stack, the daemon and the simulator."""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

#: The test helpers the benchmarks share with the tests (a private PostgreSQL:
#: ``tests/pgserver.py``); they are not part of the installed package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

if TYPE_CHECKING:
    from tokenstation.daemon.simulator.privatebus import PrivateBus
    from tokenstation.daemon.simulator.stack import PcscStack


def machine() -> dict[str, str]:
    """Where and when a result was measured."""
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def report(result: dict[str, Any], path: Path | None) -> None:
    """Print the result as JSON and write it to ``path`` when given."""
    text = json.dumps(result, indent=2)
    print(text)
    if path is not None:
        path.write_text(text + "\n")


def proc_cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_mem_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MB."""
    vals = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            vals[key] = int(rest.split()[0]) / 1024
    return vals["VmRSS"], vals["VmHWM"]


def summary(values: list[float]) -> dict[str, float]:
    """median, p90, max and n of a list of timings."""
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 2),
        "p90": round(ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)], 2),  # nearest rank
        "max": round(ordered[-1], 2),
        "n": len(ordered),
    }


async def wait_until_measured(client: Any, timeout: float = 20.0) -> None:
    """Until the daemon has a precise measurement of a token (a StationClient).

    Benchmarks wait for this before signalling the simulator: before it is up, SIGUSR2
    would kill it rather than take it off the reader.
    """
    deadline = time.monotonic() + timeout
    while not any(p.get("precise") for p in await client.present()):
        if time.monotonic() > deadline:
            raise RuntimeError("the simulated token was not measured")
        await asyncio.sleep(0.05)


@dataclass
class Daemon:
    """A `tokenstation daemon` on a private bus and a private pcscd + vpcd."""

    bus: PrivateBus
    stack: PcscStack
    env: dict[str, str]  # what its clients are given (isolated_env)
    proc: subprocess.Popen[bytes]


@contextmanager
def running_daemon(
    work: Path,
    readers: int,
    *args: str,
    stack: PcscStack | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Daemon]:
    """Start a private dbus-daemon, pcscd + vpcd with ``readers`` readers (or use the
    running ``stack``, left running) and `tokenstation daemon *args` (its XDG folders in
    ``work``, its output in ``work/daemon.log``); on leaving, stop the daemon (SIGTERM)
    and what was started here."""
    from tokenstation.daemon.simulator.privatebus import PrivateBus, isolated_env
    from tokenstation.daemon.simulator.stack import PcscStack

    bus = PrivateBus().start()
    own_stack = stack is None
    stack = PcscStack(readers=readers).start() if stack is None else stack
    env = isolated_env(stack.env(), bus.address, work)
    log = (work / "daemon.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tokenstation.daemon", "daemon", *args],
        env={**env, **(extra_env or {})},
        stdout=log,
        stderr=log,
    )
    try:
        yield Daemon(bus, stack, env, proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
        if own_stack:
            stack.cleanup()
        bus.stop()


def queue_db(work: Path) -> Path:
    """The queue database of a daemon whose XDG folders are in ``work``."""
    return work / "data" / "tokenstation" / "queue.sqlite3"


def wait_for_intake(folder: Path, db: Path, deadline: float) -> None:
    """Until the daemon has made its drop ``folder`` and queue ``db`` (or, silently, the
    monotonic ``deadline``: what is dropped then is counted as the run goes on)."""
    while not (folder.exists() and db.exists()) and time.monotonic() < deadline:
        time.sleep(0.05)


def count_jobs(db: Path) -> int:
    """How many jobs the queue ``db`` holds."""
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])


def start_sim(
    stack: PcscStack, *args: str, state: Path | None = None, what: str = "simulated token"
) -> subprocess.Popen[bytes]:
    """`tokenstation simulate *args` on the stack's first reader, once its card is present
    (and its ``state`` file, when given, is written); RuntimeError after 10 s."""
    from tokenstation.daemon import pcsc

    proc = subprocess.Popen(
        [sys.executable, "-m", "tokenstation.daemon", "simulate", "--port", str(stack.port(0))]
        + (["--state-file", str(state)] if state is not None else [])
        + list(args),
        env=stack.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if stack.reader_name(0) in pcsc.readers_with_card()[1] and (
            state is None or state.exists()
        ):
            return proc
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not appear")


def stop_sim(stack: PcscStack, proc: subprocess.Popen[bytes]) -> None:
    """Stop a simulator (SIGTERM) and wait until its card has left the first reader."""
    from tokenstation.daemon import pcsc

    proc.send_signal(signal.SIGTERM)
    proc.wait(5)
    while stack.reader_name(0) in pcsc.readers_with_card()[1]:
        time.sleep(0.05)
