"""Molto2 over the real virtual stack: burn + verify 100 profiles, sync all profiles.

Runs a private pcscd + vpcd and `tokenstation simulate --model molto2` in its own
process; the host side is the Molto2Session (what `tokenstation burn --profile` and
`sync` use) over pyscard. Beside it, in the same run and on the same stack, the APDU
sequence Token2's molto2.py sends (its method, replayed through the same transport:
one process run, hence one GET INFO and one authentication, per profile burned;
`--synctimeall` = one time write to each of the 100 profiles, seeded or not).

Then, on the same stack, the daemon (station mode, on a private dbus-daemon): a
100-row CSV dropped into its folder with the Molto2 placed, timed until every job is
burned (station mode: the waiting jobs in one card session, one login; each
profile read, seed, title, config, read back), and
a sync of all 100 seeded profiles asked over D-Bus (SyncToken), timed to its reply.

    .venv/bin/python bench/bench_molto2.py [--reps 5] [--old DIR] [--json FILE]

``--old DIR`` runs the daemon's part on the code in DIR too (a folder holding a
``tokenstation`` package, first on PYTHONPATH; see bench_burnpath.py), in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import (
    count_jobs,
    machine,
    proc_cpu_s,
    queue_db,
    report,
    running_daemon,
    start_sim,
    stop_sim,
    wait_for_intake,
    wait_until_measured,
)

from tokenstation.daemon.simulator.stack import PcscStack
from tokenstation.daemon.simulator.totp import totp
from tokenstation.daemon.token import commands
from tokenstation.daemon.token import molto2 as m
from tokenstation.daemon.token.molto2_session import Molto2Session
from tokenstation.daemon.token.secret import Secret

PROFILES = 100
SETTINGS = m.ProfileSettings()


def seed(i: int) -> Secret:
    return Secret(f"tokenstation-test-{i:05d}".encode())


def start_molto2(stack: PcscStack, state: Path, *args: str) -> subprocess.Popen[bytes]:
    """A simulated Molto2 keeping its state in ``state``, once it is on the first reader."""
    return start_sim(stack, "--model", "molto2", *args, state=state, what="simulated Molto2")


def fresh_state(state: Path) -> dict[str, Any]:
    t = time.time()
    while True:
        data: dict[str, Any] = json.loads(state.read_text())
        if data["host_time"] > t + 0.01:
            return data
        time.sleep(0.05)


def verify_codes(state: Path) -> int:
    """How many of the 100 profiles show the code their seed and clock should give."""
    st = fresh_state(state)
    ok = 0
    for p in st["profiles"]:
        i = p["profile"]
        t = st["host_time"] + p["clock_offset_s"]
        if p["code"] == totp(seed(i).reveal(), t, 30, 1, 6) and p["title"] == f"acct{i:03d}":
            ok += 1
    return ok


def timed(fn: Any) -> tuple[float, float, Any]:
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return (time.perf_counter() - w0) * 1000, (time.process_time() - c0) * 1000, out


def ours_burn(reader: str) -> tuple[float, float, int]:
    from tokenstation.daemon import pcsc

    with pcsc.PcscConnection(reader) as conn:
        s = Molto2Session(conn)

        def run() -> None:
            for i in range(PROFILES):
                s.burn(i, seed(i), SETTINGS, f"acct{i:03d}")

        wall, cpu, _ = timed(run)
        return wall, cpu, s.stats.apdus


def peer_burn(reader: str) -> tuple[float, float, int]:
    """molto2.py's sequence per profile: info, challenge, auth, seed check, seed, title, config."""
    from tokenstation.daemon import pcsc

    apdus = 0
    key = m.derive_key(m.DEFAULT_CUSTOMER_KEY)

    def send(conn: pcsc.PcscConnection, apdu: bytes) -> bytes:
        nonlocal apdus
        apdus += 1
        resp = conn.transmit(apdu)
        if resp[-2:] != b"\x90\x00":
            raise RuntimeError(f"{apdu[:4].hex()} -> {resp[-2:].hex()}")
        return resp[:-2]

    def run() -> None:
        for i in range(PROFILES):
            with pcsc.PcscConnection(reader) as conn:  # one tool run per profile
                send(conn, m.GET_INFO)
                challenge = send(conn, m.GET_CHALLENGE)
                send(conn, commands.authenticate(key, challenge))
                send(conn, m.read_profile(i))
                send(conn, m.write_seed(key, i, seed(i)))
                send(conn, m.write_title(key, i, f"acct{i:03d}"))
                send(conn, m.write_config(key, i, SETTINGS, int(time.time())))

    wall, cpu, _ = timed(run)
    return wall, cpu, apdus


def ours_sync(reader: str) -> tuple[float, float, int, list[float], list[float]]:
    from tokenstation.daemon import pcsc

    with pcsc.PcscConnection(reader) as conn:
        s = Molto2Session(conn)
        wall, cpu, results = timed(s.sync)
        before = [r.drift_before_s for r in results if r.drift_before_s is not None]
        after = [r.drift_after_s for r in results if r.drift_after_s is not None]
        return wall, cpu, s.stats.apdus, before, after


def peer_sync(reader: str) -> tuple[float, float, int]:
    """molto2.py --synctimeall: info, challenge, auth, then a time write to each of 0..99."""
    from tokenstation.daemon import pcsc

    key = m.derive_key(m.DEFAULT_CUSTOMER_KEY)
    with pcsc.PcscConnection(reader) as conn:

        def run() -> int:
            conn.transmit(m.GET_INFO)
            challenge = conn.transmit(m.GET_CHALLENGE)[:-2]
            conn.transmit(commands.authenticate(key, challenge))
            for i in range(PROFILES):
                conn.transmit(m.sync_time(key, i, int(time.time())))
            return 3 + PROFILES

        wall, cpu, apdus = timed(run)
        return wall, cpu, apdus


def burned(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM jobs WHERE state = 'burned'").fetchone()[0])


def daemon_rep(
    stack: PcscStack, work: Path, state: Path, old: str | None = None
) -> dict[str, float]:
    """One daemon run: a dropped 100-row CSV burned into a placed Molto2, then a sync of
    all 100 seeded profiles over D-Bus. Wall times in ms; the daemon's CPU in ms.
    ``old``: the daemon runs on the code in that PYTHONPATH folder."""
    from tokenstation.daemon.bus.client import StationClient

    folder, conf = work / "drop", work / "config.toml"
    conf.write_text(
        f'mode = "station"\n[drop]\nfolder = "{folder}"\nstability_delay = 0.2\n'
        '[clock]\ntrust = "assume-synchronised"\n'
    )
    rows = ["serial,secret,issuer,account"] + [
        f",{base64.b32encode(seed(i).reveal()).decode()},,acct{i:03d}" for i in range(PROFILES)
    ]
    out: dict[str, float] = {}
    extra = {"PYTHONPATH": old} if old else None
    with running_daemon(work, 1, "--config", str(conf), stack=stack, extra_env=extra) as d:
        db = queue_db(work)
        wait_for_intake(folder, db, time.monotonic() + 20)

        async def run() -> None:
            client = await StationClient.connect("session", d.bus.address, require=False)
            try:
                proc = start_molto2(stack, state)
                await wait_until_measured(client)
                staged = work / "batch.csv"
                staged.write_text("\n".join(rows) + "\n")
                cpu0, t0 = proc_cpu_s(d.proc.pid), time.perf_counter()
                staged.rename(folder / "batch.csv")
                t_queued = None
                while burned(db) < PROFILES:
                    if t_queued is None and count_jobs(db) >= PROFILES:
                        t_queued = time.perf_counter()
                    if time.perf_counter() - t0 > 120:
                        raise RuntimeError("the daemon did not burn 100 profiles in 120 s")
                    await asyncio.sleep(0.01)
                t1 = time.perf_counter()
                out["drop_to_burned_ms"] = (t1 - t0) * 1000
                out["queued_to_burned_ms"] = (t1 - (t_queued or t1)) * 1000
                out["daemon_cpu_burn_ms"] = (proc_cpu_s(d.proc.pid) - cpu0) * 1000
                out["verified"] = verify_codes(state)
                stop_sim(stack, proc)
                seeds = [f"{i}:{seed(i).reveal().hex()}:acct{i:03d}" for i in range(PROFILES)]
                flags = [a for x in seeds for a in ("--profile-seed", x)]
                proc = start_molto2(stack, state, "--clock-offset", "-42.3", *flags)
                await wait_until_measured(client)
                cpu0, t0 = proc_cpu_s(d.proc.pid), time.perf_counter()
                reply = await client.sync("")
                out["sync_ms"] = (time.perf_counter() - t0) * 1000
                out["daemon_cpu_sync_ms"] = (proc_cpu_s(d.proc.pid) - cpu0) * 1000
                out["synced"] = reply["synced"]
                out["drift_before_s"] = reply["drift_before_s"]
                out["max_abs_drift_after_s"] = abs(reply["drift_after_s"])
                st = fresh_state(state)
                out["profiles_in_time"] = sum(
                    abs(p["clock_offset_s"]) < 1.0 and p["seed_present"] for p in st["profiles"]
                )
                stop_sim(stack, proc)
            finally:
                await client.close()

        asyncio.run(run())
    return out


def med(values: list[float]) -> float:
    return round(statistics.median(values), 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--old", help="also run the daemon on this PYTHONPATH folder's code")
    args = ap.parse_args()
    rows: dict[str, dict[str, list[float]]] = {}

    def add(name: str, **values: float) -> None:
        for k, v in values.items():
            rows.setdefault(name, {}).setdefault(k, []).append(v)

    with PcscStack(readers=1) as stack, tempfile.TemporaryDirectory() as tmp:
        os.environ["PCSCLITE_CSOCK_NAME"] = str(stack.socket_path)
        reader = stack.reader_name(0)
        state = Path(tmp) / "state.json"
        for _ in range(args.reps):
            for who, fn in (("tokenstation", ours_burn), ("molto2.py method", peer_burn)):
                proc = start_molto2(stack, state)
                try:
                    wall, cpu, apdus = fn(reader)
                    add(f"burn 100 ({who})", wall_ms=wall, cpu_ms=cpu, apdus=apdus)
                    add(f"burn 100 ({who})", verified=verify_codes(state))
                finally:
                    stop_sim(stack, proc)
            seeds = [f"{i}:{seed(i).reveal().hex()}:acct{i:03d}" for i in range(PROFILES)]
            flags = [a for s in seeds for a in ("--profile-seed", s)]
            proc = start_molto2(stack, state, "--clock-offset", "-42.3", *flags)
            try:
                wall, cpu, apdus, before, after = ours_sync(reader)
                add("sync all (tokenstation)", wall_ms=wall, cpu_ms=cpu, apdus=apdus)
                add("sync all (tokenstation)", drift_before_s=med(before))
                add("sync all (tokenstation)", max_abs_drift_after_s=max(map(abs, after)))
                st = fresh_state(state)
                add(
                    "sync all (tokenstation)",
                    profiles_in_time=sum(
                        abs(p["clock_offset_s"]) < 1.0 and p["seed_present"] for p in st["profiles"]
                    ),
                )
            finally:
                stop_sim(stack, proc)
            proc = start_molto2(stack, state, "--clock-offset", "-42.3", *flags)
            try:
                wall, cpu, apdus = peer_sync(reader)
                add("sync all (molto2.py method)", wall_ms=wall, cpu_ms=cpu, apdus=apdus)
            finally:
                stop_sim(stack, proc)
            if args.old:
                work = Path(tempfile.mkdtemp(prefix="daemon-old-", dir=tmp))
                add(
                    "daemon on main: dropped CSV -> 100 profiles, then sync",
                    **daemon_rep(stack, work, state, args.old),
                )
            work = Path(tempfile.mkdtemp(prefix="daemon-", dir=tmp))
            add("daemon: dropped CSV -> 100 profiles, then sync", **daemon_rep(stack, work, state))
    result = {
        **machine(),
        "reps": args.reps,
        "medians": {name: {k: med(v) for k, v in vals.items()} for name, vals in rows.items()},
    }
    report(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
