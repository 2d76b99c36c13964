"""Cost as work grows: the shared PostgreSQL queue with 1-30 stations and 1k-100k jobs.

One private PostgreSQL (tests/pgserver.py, fsync off) and, per jobs count,
one fresh database holding that many jobs: half burned history, half queued with a
sealed seed each (``--fill history``, the default: the history older than what waits, as
in a queue that has run for a while; ``--fill interleaved``: odd ids queued, even ids
burned, as the first version of this bench filled it). Stations are in-process threads,
each with its own ``JobQueue`` and connections, doing what a station's daemon does when
a token is placed: has anything targeted this serial (``targeted``), the page of waiting
jobs (``claimable``; main before it: every queued job), then the claim of the first one
with its seed (this tree: ``claim(..., like=job)``, one statement that takes the oldest
free job of those settings no other station is claiming; the code before it:
``secret`` + ``start_burn``, and on "another station has it" the page again and a
retry), then, after ``--burn-ms`` (the card write: uniform in 0.5-1.5x that), ``burned``,
and as long again before the next token is placed (each station starting at a random
moment; ``--burn-ms 0``: stations place tokens back to back, all the machine can take).
Per cell, each station places tokens for ``--seconds`` (the claim in flight then
finishes). Measured per cell:

- claim latency: token placed -> claim committed, p50/p99, and claims/s over all;
- NOTIFY to QueueState: a claim committed at a station -> a listening station has
  re-read what QueueState carries (the waiting and failed counts and the hand-over
  counts, as ``Provisioner.count``) after it; this tree through ``shared.Coalescer`` on
  an event loop, as the daemon, the code before it once per notification;
- ``queue list`` first page: ``jobs(limit=1000)`` + ``total()`` as ListJobs answers;
- database size per job (``pg_total_relation_size('jobs')`` / jobs);
- at the largest jobs count, EXPLAIN ANALYZE of the page of free jobs (and of this
  tree's claim statement) as the cells left the database.

    .venv/bin/python bench/bench_scale.py [--old DIR] [--seconds 4] [--burn-ms 0]
        [--fill history] [--json FILE] [--png FILE]

``--old DIR`` runs the same first on the code in DIR (a folder holding a
``tokenstation`` package, first on PYTHONPATH), in a child process, then on this tree:
side by side in one run, one plot. Which path a tree takes is found by what it has
(``JobQueue.claim``, ``shared.Coalescer``), so the old code runs its own statements.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchlib import machine, report

from tokenstation.daemon.storage.secretbox import SecretBox

STATIONS = (1, 3, 10, 30)
JOBS = (1_000, 10_000, 100_000)
PAGE = 1000
KEY = bytes(32)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def fill(url: str, n: int, order: str) -> None:
    """``n`` jobs, half burned, half queued with a sealed seed (kept in ``bench_seeds`` too,
    so each cell can put its claimed jobs back as they were)."""
    from tokenstation.daemon.storage import schema
    from tokenstation.daemon.storage.postgres import PostgresDatabase

    db = PostgresDatabase(url)
    schema.migrate(db, schema.PARTS)
    now = time.time()
    half = n // 2
    burned = f"g <= {half}" if order == "history" else "g % 2 = 0"
    db.execute(
        "INSERT INTO jobs (state, secret, secret_hash, fingerprint, issuer, account, "
        "algorithm, period, source, created, updated, burned_serial, station, digest_keyed) "
        f"SELECT CASE WHEN {burned} THEN 'burned' ELSE 'queued' END, NULL, "
        "md5('h' || g), substr(md5('f' || g), 1, 8), 'ACME', 'user' || g, 'SHA1', 30, "
        f"'batch.csv', {now}, {now}, "
        f"CASE WHEN {burned} THEN 'H' || g ELSE NULL END, 'S0', 1 "
        f"FROM generate_series(1, {n}) AS g"
    )
    ids = [int(r[0]) for r in db.execute("SELECT id FROM jobs WHERE state = 'queued'").fetchall()]
    box = SecretBox(KEY)
    sealed = [box.seal(f"bench-seed-{i:07d}".encode(), i, "") for i in ids]
    db.execute("CREATE TABLE bench_seeds (id BIGINT PRIMARY KEY, secret BYTEA NOT NULL)")
    db.execute(
        "INSERT INTO bench_seeds SELECT * FROM unnest(?::bigint[], ?::bytea[])", (ids, sealed)
    )
    db.execute("UPDATE jobs SET secret = s.secret FROM bench_seeds s WHERE s.id = jobs.id")
    db.execute("VACUUM ANALYZE jobs")
    db.close()


def pick(q: Any) -> list[Any]:
    """The waiting jobs as the station's daemon asks for them at a placement."""
    claimable = getattr(q, "claimable", None)
    if claimable is not None:  # a bounded page of candidates
        return list(claimable(""))
    return list(q.jobs(["queued"]))  # before it: every queued job


def counts(q: Any) -> None:
    """What a QueueState re-read asks (``Provisioner.count``)."""
    q.waiting()
    q.count("failed")
    handover = getattr(q, "handover_counts", None)
    if handover is not None:
        handover()


class Listener:
    """The listening station: each notification re-read at once (the code before the
    coalescing), or through ``shared.Coalescer`` on an event loop of its own (this tree)."""

    def __init__(self, q: Any, committed: dict[int, float]) -> None:
        self.q = q
        self.committed = committed
        self.notify_ms: list[float] = []
        self.notifications = 0
        self.rereads = 0
        self._pending: list[int] = []
        self._lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.coalescer: Any = None
        try:
            from tokenstation.daemon.provisioning.shared import Coalescer
        except ImportError:
            return
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.coalescer = Coalescer(self.loop, lambda _what: self.reread())

    def on_change(self, what: str) -> None:  # the listener thread
        parts = what.split()
        with self._lock:
            self.notifications += 1
            if len(parts) >= 2 and parts[-2] == "claimed":
                self._pending.append(int(parts[-1]))
        if self.coalescer is not None:
            self.coalescer.poke(what)
        else:
            self.reread()

    def reread(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
            self.rereads += 1
        counts(self.q)  # after the snapshot: the changes in it are in these counts
        t = time.perf_counter()
        for job_id in pending:
            at = self.committed.get(job_id)
            if at is not None:
                self.notify_ms.append((t - at) * 1000)

    def close(self) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)


def claim(q: Any, serial: str, retries: list[int], lock: threading.Lock) -> Any:
    """A placement's claim, as the tree's daemon makes it; None when nothing waits."""
    while True:
        waiting = pick(q)
        if not waiting:
            return None
        first = waiting[0]
        if hasattr(q, "claim"):  # one statement, the seed opened inside it
            try:
                job, _seed = q.claim(first.id, serial, like=first)
                return job
            except ValueError:  # every job of those settings taken meanwhile: the page again
                with lock:
                    retries[0] += 1
                continue
        try:
            q.secret(first.id)
            return q.start_burn(first.id, serial)
        except (KeyError, ValueError):  # another station has it (or burned it): again
            with lock:
                retries[0] += 1


def cell(url: str, stations: int, seconds: float, burn_s: float) -> dict[str, Any]:
    from tokenstation.daemon.provisioning.queue import JobQueue
    from tokenstation.daemon.storage.postgres import PostgresDatabase

    def open_queue(name: str) -> JobQueue:
        return JobQueue(PostgresDatabase(url), station=name, box=SecretBox(KEY))

    reset = PostgresDatabase(url)  # the jobs the previous cell burned wait again
    reset.execute(
        "UPDATE jobs SET state = 'queued', burned_serial = NULL, claimed_by = '', "
        "lease_until = NULL, attempts = 0, secret = s.secret FROM bench_seeds s "
        "WHERE s.id = jobs.id AND jobs.state <> 'queued'"
    )
    reset.execute("VACUUM ANALYZE jobs")
    reset.close()
    queues = [open_queue(f"S{i}") for i in range(stations)]
    listening = open_queue("L")
    committed: dict[int, float] = {}
    listener = Listener(listening, committed)
    up = threading.Event()
    listening.listen(listener.on_change, lambda ok: up.set() if ok else None)
    up.wait(10)
    claim_ms: list[float] = []
    retries = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def station(i: int, q: JobQueue) -> None:
        rng = random.Random(i)  # operators place tokens at their own moments, not in step
        if burn_s:
            time.sleep(rng.uniform(0, burn_s))
        k = 0
        while time.perf_counter() < deadline:
            serial = f"S{i}-{k}"
            k += 1
            t0 = time.perf_counter()
            q.targeted(serial)
            job = claim(q, serial, retries, lock)
            if job is None:
                return
            t1 = time.perf_counter()
            committed[job.id] = t1
            with lock:
                claim_ms.append((t1 - t0) * 1000)
            if burn_s:
                time.sleep(rng.uniform(0.5, 1.5) * burn_s)  # the card write
            q.burned(job.id, serial)
            if burn_s:
                time.sleep(rng.uniform(0.5, 1.5) * burn_s)  # the next token placed

    threads = [threading.Thread(target=station, args=(i, q)) for i, q in enumerate(queues)]
    t_start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t_start
    time.sleep(1.0)  # the last notifications
    page_ms = []
    for _ in range(5):
        t0 = time.perf_counter()
        queues[0].jobs(None, offset=0, limit=PAGE)
        queues[0].total(None)
        page_ms.append((time.perf_counter() - t0) * 1000)
    listener.close()
    for q in [listening, *queues]:
        q.close()
    return {
        "stations": stations,
        "claims": len(claim_ms),
        "claims_per_s": round(len(claim_ms) / elapsed, 1),
        "claim_ms_p50": pct(claim_ms, 0.5),
        "claim_ms_p99": pct(claim_ms, 0.99),
        "claim_retries": retries[0],
        "notifications": listener.notifications,
        "rereads": listener.rereads,
        "notify_to_queuestate_ms_p50": pct(listener.notify_ms, 0.5),
        "notify_to_queuestate_ms_p99": pct(listener.notify_ms, 0.99),
        "first_page_ms_median": round(statistics.median(page_ms), 2),
    }


class Explained(Exception):
    """Ends an EXPLAIN ANALYZE's transaction with a rollback."""


def explain(url: str) -> dict[str, Any]:
    """EXPLAIN ANALYZE of the page of free jobs and (this tree) the claim statement."""
    from tokenstation.daemon.provisioning import queue as queue_module
    from tokenstation.daemon.storage.postgres import PostgresDatabase

    db = PostgresDatabase(url)
    statements = {
        "free page (claimable)": queue_module._JOB_SELECT
        + " WHERE state = 'queued' AND serial = '' ORDER BY id LIMIT 32"
    }
    if hasattr(queue_module.JobQueue, "claim"):
        statements["claim (one statement)"] = (
            "UPDATE jobs SET state = 'burning', claimed_by = 'X' WHERE state = 'queued' AND "
            "id = (SELECT id FROM jobs WHERE state = 'queued' AND serial = '' AND "
            "algorithm = 'SHA1' AND period = 30 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)"
        )
    out = {}
    for name, sql in statements.items():
        with contextlib.suppress(Explained), db.transaction():
            out[name] = [r[0] for r in db.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql).fetchall()]
            raise Explained  # rolled back: the claim explained is not kept
    db.close()
    return out


def run_tree(
    seconds: float, jobs: tuple[int, ...], stations: tuple[int, ...], burn_s: float, order: str
) -> dict[str, Any]:
    from pgserver import PgServer

    from tokenstation.daemon.storage.postgres import PostgresDatabase

    server = PgServer().start()
    cells = []
    plans: dict[str, Any] = {}
    try:
        for n in jobs:
            url = server.new_database("scale")
            t0 = time.perf_counter()
            fill(url, n, order)
            fill_s = time.perf_counter() - t0
            db = PostgresDatabase(url)
            (size,) = db.execute("SELECT pg_total_relation_size('jobs')").fetchone()
            db.close()
            for s in stations:
                c = cell(url, s, seconds, burn_s)
                c.update(jobs=n, bytes_per_job=round(int(size) / n), fill_s=round(fill_s, 1))
                print(json.dumps(c), file=sys.stderr, flush=True)
                cells.append(c)
            if n == max(jobs):
                plans = explain(url)
    finally:
        server.stop()
    return {"cells": cells, "explain": plans}


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [
        ("claim_ms_p99", "claim p99 (ms)", 50),
        ("claims_per_s", "claims/s (all stations)", None),
        ("notify_to_queuestate_ms_p99", "NOTIFY -> QueueState p99 (ms)", None),
        ("first_page_ms_median", "queue list first page (ms)", 100),
    ]
    runs = result["runs"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(18, 4.5))
    colours = {1_000: "tab:blue", 10_000: "tab:orange", 100_000: "tab:red"}
    for ax, (key, title, target) in zip(axes, metrics, strict=True):
        for r, run in enumerate(runs):
            for n in sorted({c["jobs"] for c in run["cells"]}):
                row = [c for c in run["cells"] if c["jobs"] == n]
                ax.plot(
                    [c["stations"] for c in row],
                    [c[key] for c in row],
                    "--" if r == 0 and len(runs) > 1 else "-",
                    color=colours.get(n),
                    marker="o",
                    label=f"{run['code']}, {n // 1000}k jobs",
                )
        if target is not None:
            ax.axhline(target, color="grey", linewidth=1, linestyle=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(list(STATIONS), [str(s) for s in STATIONS])
        ax.set_xlabel("stations")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    pace = (
        f"a token every ~{2 * result['burn_ms'] / 1000:g} s per station"
        if result.get("burn_ms")
        else "stations placing tokens back to back"
    )
    fig.suptitle(
        f"Shared PostgreSQL queue, {pace}: dashed main, solid this tree (dotted: the targets; "
        "2 shared cores)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", help="run this PYTHONPATH folder's code first, in a child")
    ap.add_argument("--seconds", type=float, default=4.0, help="per cell")
    ap.add_argument("--burn-ms", type=float, default=0.0, help="claim -> burned (card write)")
    ap.add_argument("--fill", choices=("history", "interleaved"), default="history")
    ap.add_argument("--jobs", default=",".join(map(str, JOBS)))
    ap.add_argument("--stations", default=",".join(map(str, STATIONS)))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--png", type=Path)
    ap.add_argument("--replot", type=Path, help="only draw --png from this --json result")
    ap.add_argument("--tree-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    jobs = tuple(int(v) for v in args.jobs.split(","))
    stations = tuple(int(v) for v in args.stations.split(","))
    if args.replot:
        plot(json.loads(args.replot.read_text()), args.png)
        return 0
    if args.tree_only:
        tree = run_tree(args.seconds, jobs, stations, args.burn_ms / 1000, args.fill)
        print(json.dumps(tree))
        return 0
    runs = []
    if args.old:
        argv = [sys.executable, __file__, "--tree-only", "--seconds", str(args.seconds)]
        argv += ["--jobs", args.jobs, "--stations", args.stations, "--fill", args.fill]
        argv += ["--burn-ms", str(args.burn_ms)]
        out = subprocess.run(
            argv, env={**os.environ, "PYTHONPATH": args.old}, check=True, stdout=subprocess.PIPE
        ).stdout
        runs.append({"code": f"main ({args.old})", **json.loads(out)})
    tree = run_tree(args.seconds, jobs, stations, args.burn_ms / 1000, args.fill)
    runs.append({"code": "this tree", **tree})
    setup = {"seconds_per_cell": args.seconds, "burn_ms": args.burn_ms, "fill": args.fill}
    report({**machine(), **setup, "runs": runs}, args.json)
    if args.png:
        plot({**setup, "runs": runs}, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
