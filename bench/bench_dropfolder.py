"""1000 QR files dropped at once: time until every one is queued, and that none is lost.

Starts a private pcscd + vpcd, a private dbus-daemon and `tokenstation daemon` with its
drop folder in a temporary directory (stability delay 1 s, the default), generates
``--files`` enrolment QR images (unique secrets) in a staging folder on the same file
system, moves them all into the drop folder in one go, and waits until the queue holds
one job per file and the folder is empty.

With ``--big``, the first file dropped is instead a 9400x9400 1-bit white PNG (22 KB on
disk, 88 megapixels), the others right behind it: it reports when the big one was
refused, when the last enrolment QR was queued, and the peak memory of the daemon and of
its decoder processes.

    .venv/bin/python bench/bench_dropfolder.py [--files 1000] [--polling] [--big] [--json FILE]

With ``--idle-cycle SECONDS``, it measures what an idle daemon costs instead: the RSS of
the daemon and all its child processes right after start (no file yet), the time from a
QR file moved into the folder to its job queued for the first file, for warm ones right
after, and for the first one after SECONDS without a file (longer than the decoder
pool's idle time, 60 s), and the RSS again after that idle time. ``--old DIR`` runs the
same first with the code in DIR (a folder holding a ``tokenstation`` package, put first
on PYTHONPATH), then with this tree's: side by side in one run. Last, in this process,
the pool alone: a decode right after the idle workers were stopped beside warm ones.

    .venv/bin/python bench/bench_dropfolder.py --idle-cycle 65 --old /tmp/i25-old --json FILE
"""

from __future__ import annotations

import argparse
import base64
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import segno
from benchlib import (
    count_jobs,
    machine,
    proc_mem_mb,
    queue_db,
    report,
    running_daemon,
    summary,
    wait_for_intake,
)
from PIL import Image


def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (the forkserver and its decoder workers)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def family_rss_mb(pid: int) -> dict[str, float]:
    """RSS of ``pid`` and of every process below it, and their sum (MB)."""
    procs = {"daemon": proc_mem_mb(pid)[0]}
    for child in descendants(pid):
        try:
            name = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            procs[f"{child} {name[-60:]}"] = proc_mem_mb(child)[0]
        except (OSError, KeyError):
            continue
    return {**{k: round(v, 1) for k, v in procs.items()}, "total": round(sum(procs.values()), 1)}


def drop_and_wait(staging: Path, folder: Path, db: Path, i: int) -> float:
    """Move one enrolment QR into the folder; seconds until its job is queued."""
    secret = base64.b32encode(f"idle-secret-{i:06d}".encode()).decode().rstrip("=")
    name = f"idle{i:05d}.png"
    segno.make_qr(f"otpauth://totp/Idle:u{i}?secret={secret}", error="m").save(
        staging / name, scale=4, kind="png"
    )
    before = count_jobs(db)
    t0 = time.perf_counter()
    os.rename(staging / name, folder / name)
    while count_jobs(db) <= before:
        if time.perf_counter() - t0 > 30:
            raise RuntimeError(f"{name} was not queued within 30 s")
        time.sleep(0.002)
    return time.perf_counter() - t0


def idle_cycle(code: str, idle_s: float, warm: int) -> dict[str, object]:
    """One daemon on ``code`` (``"this tree"`` or a PYTHONPATH folder): see the docstring."""
    if code != "this tree":
        os.environ["PYTHONPATH"] = code
    else:
        os.environ.pop("PYTHONPATH", None)
    work = Path(tempfile.mkdtemp(prefix="ts-bench-idle-"))
    staging, folder = work / "staging", work / "drop"
    staging.mkdir()
    conf = work / "config.toml"
    conf.write_text(f'[drop]\nfolder = "{folder}"\nstability_delay = 0.1\n')
    db = queue_db(work)
    out: dict[str, object] = {"code": code}
    with running_daemon(work, 1, "--config", str(conf), "--log-level", "warning") as daemon:
        wait_for_intake(folder, db, time.monotonic() + 20)
        time.sleep(5.0)  # settled: what a daemon that never sees a file holds
        out["idle_rss_at_start_mb"] = family_rss_mb(daemon.proc.pid)
        n = 0
        first = drop_and_wait(staging, folder, db, n)
        warm_s = []
        for n in range(1, warm + 1):
            warm_s.append(drop_and_wait(staging, folder, db, n))
        out["busy_rss_mb"] = family_rss_mb(daemon.proc.pid)
        time.sleep(idle_s)
        out["idle_rss_after_work_mb"] = family_rss_mb(daemon.proc.pid)
        after_idle = drop_and_wait(staging, folder, db, warm + 1)
        for n in range(warm + 2, 2 * warm + 2):
            warm_s.append(drop_and_wait(staging, folder, db, n))
        out["first_file_after_start_ms"] = round(first * 1000, 1)
        out["first_file_after_idle_ms"] = round(after_idle * 1000, 1)
        out["warm_file_ms"] = summary([t * 1000 for t in warm_s])
        out["after_idle_minus_warm_median_ms"] = round(
            after_idle * 1000 - float(out["warm_file_ms"]["median"]),
            1,  # type: ignore[index]
        )
    os.environ.pop("PYTHONPATH", None)
    return out


def pool_cycle(cycles: int, warm: int) -> dict[str, object]:
    """This tree's pool in this process: a decode after the idle stop beside warm ones."""
    from tokenstation.daemon.qr.pool import DecodePool

    buf = staging_qr()
    pool = DecodePool(workers=2)
    cold, hot = [], []
    try:
        for _ in range(cycles):
            pool.reap_idle(now=time.monotonic() + pool.idle_s + 1)  # as after a minute
            t0 = time.perf_counter()
            pool.decode(buf)
            cold.append((time.perf_counter() - t0) * 1000)
            for _ in range(warm):
                t0 = time.perf_counter()
                pool.decode(buf)
                hot.append((time.perf_counter() - t0) * 1000)
    finally:
        pool.close()
    return {"decode_after_idle_stop_ms": summary(cold), "decode_warm_ms": summary(hot)}


def staging_qr() -> bytes:
    import io

    buf = io.BytesIO()
    segno.make_qr("otpauth://totp/Idle:pool?secret=JBSWY3DPEHPK3PXP", error="m").save(
        buf, scale=4, kind="png"
    )
    return buf.getvalue()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--idle-cycle", type=float, metavar="SECONDS")
    ap.add_argument("--old", help="with --idle-cycle: run this PYTHONPATH folder's code first")
    ap.add_argument("--warm", type=int, default=10, help="with --idle-cycle: warm files")
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--polling", action="store_true", help="use the polling observer")
    ap.add_argument("--big", action="store_true", help="drop a 9400x9400 blank PNG first")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.idle_cycle is not None:
        runs = [idle_cycle(args.old, args.idle_cycle, args.warm)] if args.old else []
        runs.append(idle_cycle("this tree", args.idle_cycle, args.warm))
        report({**machine(), "runs": runs, "pool": pool_cycle(20, 10)}, args.json)
        return 0

    work = Path(tempfile.mkdtemp(prefix="ts-bench-drop-"))
    staging, folder = work / "staging", work / "drop"
    staging.mkdir()
    t0 = time.perf_counter()
    for i in range(args.files):
        secret = base64.b32encode(f"bench-secret-{i:06d}".encode()).decode().rstrip("=")
        uri = f"otpauth://totp/Bench:user{i}?secret={secret}&issuer=Bench"
        segno.make_qr(uri, error="m").save(staging / f"user{i:05d}.png", scale=4, kind="png")
    generate_s = time.perf_counter() - t0
    big = staging / "aaa-blank-9400.png"  # sorts first: moved in first
    if args.big:
        Image.new("1", (9400, 9400), 1).save(big, optimize=True)
    conf = work / "config.toml"
    conf.write_text(
        f'[drop]\nfolder = "{folder}"\npolling = {str(args.polling).lower()}\n'
        "poll_interval = 1.0\nstability_delay = 1.0\n"
    )
    db = queue_db(work)
    with running_daemon(work, 2, "--config", str(conf)) as daemon:
        wait_for_intake(folder, db, time.monotonic() + 20)
        files = sorted(staging.iterdir())
        t_drop = time.perf_counter()
        for f in files:
            os.rename(f, folder / f.name)
        moved_s = time.perf_counter() - t_drop
        jobs = 0
        big_refused_s = None
        while time.perf_counter() - t_drop < 300:
            if args.big and big_refused_s is None and (folder / "failed" / big.name).exists():
                big_refused_s = time.perf_counter() - t_drop
            jobs = count_jobs(db)
            left = sum(1 for p in folder.iterdir() if p.is_file())
            work = folder / ".taking"  # files being taken (claimed, being erased)
            left += sum(1 for p in work.rglob("*") if p.is_file()) if work.exists() else 0
            if jobs >= args.files and left == 0 and (big_refused_s or not args.big):
                break
            time.sleep(0.02 if args.big else 0.1)
        all_s = time.perf_counter() - t_drop
        peak = proc_mem_mb(daemon.proc.pid)[1]
        decoders_peak = [round(proc_mem_mb(pid)[1], 1) for pid in descendants(daemon.proc.pid)]
        with sqlite3.connect(db) as conn:
            distinct = conn.execute("SELECT COUNT(DISTINCT secret_hash) FROM jobs").fetchone()[0]
            failed_files = conn.execute(
                "SELECT COUNT(*) FROM files WHERE verdict != 'ok'"
            ).fetchone()[0]
    result = {
        **machine(),
        "files": args.files,
        "observer": "polling (1 s)" if args.polling else "native (inotify)",
        "stability_delay_s": 1.0,
        "generate_s": round(generate_s, 2),
        "move_in_s": round(moved_s, 3),
        "all_queued_s": round(all_s, 2),
        "files_per_s": round(args.files / all_s, 1),
        "jobs": jobs,
        "distinct_secrets": distinct,
        "refused_files": failed_files,
        "daemon_peak_rss_mb": round(peak, 1),
        "decoder_processes_peak_rss_mb": decoders_peak,
    }
    if args.big:
        result["big_png_refused_s"] = round(big_refused_s or -1, 2)
        result["big_png_reason"] = (folder / "failed" / (big.name + ".reason.txt")).read_text()
    report(result, args.json)
    return 0 if jobs == args.files == distinct else 1


if __name__ == "__main__":
    sys.exit(main())
