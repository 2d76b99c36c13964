"""What every benchmark script shares: the machine line and writing the result."""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any


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
