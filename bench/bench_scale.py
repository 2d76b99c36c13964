"""Cost as work grows: the shared PostgreSQL queue with 1-30 stations and 1k-100k jobs.

One private PostgreSQL (tests/pgserver.py, fsync off) and, per jobs count,
one fresh database holding that many jobs (half queued, half burned history with a
token serial each, inserted in one statement). Stations are in-process threads, each
with its own ``JobQueue`` and connections, doing what a station does when a token is
placed: has anything on the station targeted this serial (``targeted``), which jobs
wait (the station's pick, as the daemon asks it), claim the first free one
(``start_burn``: ``FOR UPDATE SKIP LOCKED``, intent and lease committed; another
station having it: pick again), then ``burned``. Per cell, each station places tokens
for ``--seconds`` (the claim in flight then finishes). Measured per cell:

- claim latency: token placed -> claim committed, p50/p99, and claims/s over all;
- NOTIFY to QueueState: a claim committed at a station -> a listening station's
  queue-changed callback has run and counted the waiting jobs (what QueueState carries);
- ``queue list`` first page: ``jobs(limit=1000)`` + ``total()`` as ListJobs answers;
- database size per job (``pg_total_relation_size('jobs')`` / jobs).

The seed is not opened (no sealed seed in generated rows): a constant cost per claim.

    .venv/bin/python bench/bench_scale.py [--old DIR] [--seconds 4] [--json FILE] [--png FILE]

``--old DIR`` runs the same first on the code in DIR (a folder holding a
``tokenstation`` package, first on PYTHONPATH), in a child process, then on this tree:
side by side in one run, one plot.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchlib import machine, report

STATIONS = (1, 3, 10, 30)
JOBS = (1_000, 10_000, 100_000)
PAGE = 1000


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def fill(url: str, n: int) -> None:
    from tokenstation.daemon.storage import schema
    from tokenstation.daemon.storage.postgres import PostgresDatabase

    db = PostgresDatabase(url)
    schema.migrate(db, schema.PARTS)
    now = time.time()
    db.execute(
        "INSERT INTO jobs (state, secret, secret_hash, fingerprint, issuer, account, "
        "algorithm, period, source, created, updated, burned_serial, station) "
        "SELECT CASE WHEN g % 2 = 0 THEN 'burned' ELSE 'queued' END, "
        "CASE WHEN g % 2 = 0 THEN NULL ELSE decode(md5(g::text), 'hex') END, "
        "md5('h' || g), substr(md5('f' || g), 1, 8), 'ACME', 'user' || g, 'SHA1', 30, "
        f"'batch.csv', {now}, {now}, "
        "CASE WHEN g % 2 = 0 THEN 'H' || g ELSE NULL END, 'S0' "
        f"FROM generate_series(1, {n}) AS g"
    )
    db.execute("ANALYZE jobs")
    db.close()


def pick(q: Any) -> list[Any]:
    """The waiting jobs as the station's daemon asks for them at a placement."""
    claimable = getattr(q, "claimable", None)
    if claimable is not None:  # this tree: a bounded page of candidates
        return list(claimable(""))
    return list(q.jobs(["queued"]))  # main: every queued job


def cell(url: str, stations: int, seconds: float) -> dict[str, Any]:
    from tokenstation.daemon.provisioning.queue import JobQueue
    from tokenstation.daemon.storage.postgres import PostgresDatabase
    from tokenstation.daemon.storage.secretbox import SecretBox

    def open_queue(name: str) -> JobQueue:
        return JobQueue(PostgresDatabase(url), station=name, box=SecretBox(bytes(32)))

    reset = PostgresDatabase(url)  # the jobs the previous cell burned wait again
    reset.execute(
        "UPDATE jobs SET state = 'queued', burned_serial = NULL, claimed_by = '', "
        "lease_until = NULL, secret = '\\x00'::bytea WHERE burned_serial LIKE 'S%'"
    )
    reset.execute("VACUUM ANALYZE jobs")
    reset.close()
    queues = [open_queue(f"S{i}") for i in range(stations)]
    listener = open_queue("L")
    committed: dict[int, float] = {}
    notify_ms: list[float] = []
    up = threading.Event()

    def on_change(what: str) -> None:
        listener.waiting()  # what QueueState carries
        t = time.perf_counter()
        parts = what.split()
        if len(parts) >= 2 and parts[-2] == "claimed":
            at = committed.get(int(parts[-1]))
            if at is not None:
                notify_ms.append((t - at) * 1000)

    listener.listen(on_change, lambda ok: up.set() if ok else None)
    up.wait(10)
    claim_ms: list[float] = []
    retries = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def station(i: int, q: JobQueue) -> None:
        k = 0
        while time.perf_counter() < deadline:
            serial = f"S{i}-{k}"
            k += 1
            t0 = time.perf_counter()
            q.targeted(serial)
            while True:
                waiting = pick(q)
                if not waiting:
                    return
                try:
                    job = q.start_burn(waiting[0].id, serial)
                    break
                except ValueError:
                    with lock:
                        retries[0] += 1
            t1 = time.perf_counter()
            committed[job.id] = t1
            with lock:
                claim_ms.append((t1 - t0) * 1000)
            q.burned(job.id, serial)

    threads = [threading.Thread(target=station, args=(i, q)) for i, q in enumerate(queues)]
    t_start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t_start
    time.sleep(0.5)  # the last notifications
    page_ms = []
    for _ in range(5):
        t0 = time.perf_counter()
        queues[0].jobs(None, offset=0, limit=PAGE)
        queues[0].total(None)
        page_ms.append((time.perf_counter() - t0) * 1000)
    for q in [listener, *queues]:
        q.close()
    return {
        "stations": stations,
        "claims": len(claim_ms),
        "claims_per_s": round(len(claim_ms) / elapsed, 1),
        "claim_ms_p50": pct(claim_ms, 0.5),
        "claim_ms_p99": pct(claim_ms, 0.99),
        "claim_retries": retries[0],
        "notify_to_queuestate_ms_p50": pct(notify_ms, 0.5),
        "notify_to_queuestate_ms_p99": pct(notify_ms, 0.99),
        "first_page_ms_median": round(statistics.median(page_ms), 2),
    }


def run_tree(seconds: float, jobs: tuple[int, ...], stations: tuple[int, ...]) -> dict[str, Any]:
    from pgserver import PgServer

    from tokenstation.daemon.storage.postgres import PostgresDatabase

    server = PgServer().start()
    cells = []
    try:
        for n in jobs:
            url = server.new_database("scale")
            t0 = time.perf_counter()
            fill(url, n)
            fill_s = time.perf_counter() - t0
            db = PostgresDatabase(url)
            (size,) = db.execute("SELECT pg_total_relation_size('jobs')").fetchone()
            db.close()
            for s in stations:
                c = cell(url, s, seconds)
                c.update(jobs=n, bytes_per_job=round(int(size) / n), fill_s=round(fill_s, 1))
                print(json.dumps(c), file=sys.stderr, flush=True)
                cells.append(c)
    finally:
        server.stop()
    return {"cells": cells}


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [
        ("claim_ms_p99", "claim p99 (ms)"),
        ("claims_per_s", "claims/s (all stations)"),
        ("notify_to_queuestate_ms_p50", "NOTIFY -> QueueState p50 (ms)"),
        ("first_page_ms_median", "queue list first page (ms)"),
    ]
    fig, axes = plt.subplots(1, len(metrics), figsize=(18, 4.5))
    styles = {0: "--", 1: "-"}
    for ax, (key, title) in zip(axes, metrics, strict=True):
        for r, run in enumerate(runs):
            for n in sorted({c["jobs"] for c in run["cells"]}):
                row = [c for c in run["cells"] if c["jobs"] == n]
                ax.plot(
                    [c["stations"] for c in row],
                    [c[key] for c in row],
                    styles[r if len(runs) > 1 else 1],
                    marker="o",
                    label=f"{run['code']}, {n // 1000}k jobs",
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(list(STATIONS), [str(s) for s in STATIONS])
        ax.set_xlabel("stations")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("Shared PostgreSQL queue: cost as stations and jobs grow (2 shared cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", help="run this PYTHONPATH folder's code first, in a child")
    ap.add_argument("--seconds", type=float, default=4.0, help="per cell")
    ap.add_argument("--jobs", default=",".join(map(str, JOBS)))
    ap.add_argument("--stations", default=",".join(map(str, STATIONS)))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--png", type=Path)
    ap.add_argument("--tree-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    jobs = tuple(int(v) for v in args.jobs.split(","))
    stations = tuple(int(v) for v in args.stations.split(","))
    if args.tree_only:
        print(json.dumps(run_tree(args.seconds, jobs, stations)))
        return 0
    runs = []
    if args.old:
        argv = [sys.executable, __file__, "--tree-only", "--seconds", str(args.seconds)]
        argv += ["--jobs", args.jobs, "--stations", args.stations]
        out = subprocess.run(
            argv, env={**os.environ, "PYTHONPATH": args.old}, check=True, stdout=subprocess.PIPE
        ).stdout
        runs.append({"code": f"main ({args.old})", **json.loads(out)})
    runs.append({"code": "this tree", **run_tree(args.seconds, jobs, stations)})
    report({**machine(), "seconds_per_cell": args.seconds, "runs": runs}, args.json)
    if args.png:
        plot(runs, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
