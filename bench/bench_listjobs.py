"""A long queue over the bus: `tokenstation queue list` with 10,000 jobs, and the daemon's RSS.

Starts a private pcscd + vpcd, a private dbus-daemon and `tokenstation daemon`, drops
four CSV batches of 2,500 rows (10,000 bound jobs, unique secrets) into its folder,
waits until they are queued, then times `tokenstation queue list` (median of
``--runs``) and reads the daemon's RSS before and after. The script runs against the
tokenstation of the Python that runs it, so the same file measures another checkout:

    .venv/bin/python bench/bench_listjobs.py [--jobs 10000] [--runs 5] [--json FILE]
    /work/main/.venv/bin/python bench/bench_listjobs.py   # the peer, same machine
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import (
    count_jobs,
    machine,
    proc_mem_mb,
    queue_db,
    report,
    running_daemon,
    wait_for_intake,
)

BATCH = 2500


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ts-bench-list-"))
    staging, folder = work / "staging", work / "drop"
    staging.mkdir()
    for b in range(0, args.jobs, BATCH):
        rows = [
            f"{86596321000000 + i},{base64.b32encode(f'list-seed-{i:08d}xy'.encode()).decode()}\n"
            for i in range(b, min(b + BATCH, args.jobs))
        ]
        (staging / f"batch{b // BATCH:03d}.csv").write_text("".join(rows))
    conf = work / "config.toml"
    conf.write_text(f'[drop]\nfolder = "{folder}"\nstability_delay = 0.5\n')
    db = queue_db(work)
    with running_daemon(work, 1, "--config", str(conf)) as daemon:
        deadline = time.monotonic() + 30
        wait_for_intake(folder, db, deadline)
        for f in sorted(staging.iterdir()):
            os.rename(f, folder / f.name)
        while time.monotonic() < deadline + 120:
            if count_jobs(db) >= args.jobs:
                break
            time.sleep(0.2)
        rss_before = proc_mem_mb(daemon.proc.pid)[0]
        times, lines = [], 0
        for _ in range(args.runs):
            t0 = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-m", "tokenstation.daemon", "queue", "list"],
                env=daemon.env,
                capture_output=True,
                text=True,
                check=False,
            )
            times.append(time.perf_counter() - t0)
            lines = len(out.stdout.splitlines()) if out.returncode == 0 else -out.returncode
        rss_after, peak = proc_mem_mb(daemon.proc.pid)
    result = {
        **machine(),
        "jobs": args.jobs,
        "queue_list_s_median": round(statistics.median(times), 2),
        "queue_list_s_all": [round(t, 2) for t in times],
        "lines_listed": lines,
        "daemon_rss_mb_before": round(rss_before, 1),
        "daemon_rss_mb_after": round(rss_after, 1),
        "daemon_peak_rss_mb": round(peak, 1),
    }
    report(result, args.json)
    return 0 if lines == args.jobs else 1


if __name__ == "__main__":
    sys.exit(main())
