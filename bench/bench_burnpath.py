"""Station mode, placed to burned: how long a fresh token waits, measured as the token
sees it.

One full station (``tokenstation daemon`` in station mode, its own private pcscd + vpcd
and dbus-daemon; ``daemon/simulator/stations.py``), with SQLite and then with a shared
PostgreSQL (a private server, ``tests/pgserver.py``, fsync off). ``--tokens`` jobs are
dropped in its drop folder, then fresh tokens (one `tokenstation simulate` process each,
its clock 3.4 s off) are placed one after another. Per token:

- placed -> seed written: from the moment vpcd first speaks to the card (the reader
  sees it; ``seen_by_reader_at`` in the simulator's state file) to the token accepting
  the seed write (``seed_written_at``, the token's own record);
- placed -> burned and verified: to the burn's row appearing in the provisioning log
  (written after the clock was read back and measured, the registry and the queue
  updated; the log's own timestamps are whole seconds, so the bench polls it every
  10 ms and takes the moment it sees the row).

``--old DIR`` runs the same first with the daemon on the code in DIR (a folder holding a
``tokenstation`` package, first on PYTHONPATH; the simulator is this tree's), so both
are measured side by side in one run:

    git worktree add /tmp/ts-old REF
    mkdir -p /tmp/ts-old-py/tokenstation
    ln -s /tmp/ts-old/daemon /tmp/ts-old-py/tokenstation/daemon
    .venv/bin/python bench/bench_burnpath.py --old /tmp/ts-old-py [--tokens 15] [--json FILE]
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import machine, report
from pgserver import PgServer

CONFIG_SQLITE = 'mode = "station"\n[clock]\ntrust = "assume-synchronised"\n'
OFFSET_S = 3.4


def run_station(
    work: Path, tokens: int, old: str | None, url: str = "", key: Path | None = None
) -> dict[str, Any]:
    """One station, ``tokens`` jobs, ``tokens`` fresh tokens placed one after another."""
    from tokenstation.daemon.simulator.stations import SiteParts, station_config, write_config

    site = SiteParts("bench", work)
    try:
        config = station_config(url, key, "bench") if url and key is not None else CONFIG_SQLITE
        write_config(site.home, config)
        site.start_daemon(extra_env={"PYTHONPATH": old} if old else None)
        drop = site.home / "data" / "tokenstation" / "drop"
        for n in range(tokens):
            seed = base64.b32encode(f"burnpath-{n:06d}-{time.time_ns()}".encode()).decode()
            tmp = drop.parent / f".job{n}.tmp"
            tmp.write_text(f"otpauth://totp/ACME:user{n}?secret={seed.rstrip('=')}&issuer=ACME\n")
            tmp.rename(drop / f"user{n}.txt")
        log = site.home / "data" / "tokenstation" / "provisioning-log.csv"
        deadline = time.monotonic() + 30
        while any(drop.glob("*.txt")) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # queued (and published) before the first token comes
        to_seed: list[float] = []
        to_burned: list[float] = []
        for n in range(tokens):
            serial = f"86596328{n:06d}"
            state = work / f"token-{n}.json"
            proc = site.token(serial, "--state-file", str(state), "--clock-offset", str(OFFSET_S))
            burned_at = wait_burned(log, serial, 20)
            snap = json.loads(state.read_text())
            seen, seed_at = snap.get("seen_by_reader_at"), snap.get("seed_written_at")
            if burned_at is None or seen is None or seed_at is None:
                raise RuntimeError(f"token {serial} was not burned: {site.log_tail()}")
            to_seed.append(seed_at - seen)
            to_burned.append(burned_at - seen)
            site.take_off(proc, serial)
        return {
            "tokens": tokens,
            "placed_to_seed_written_s": summary(to_seed),
            "placed_to_burned_s": summary(to_burned),
        }
    finally:
        site.stop_daemon()
        site.close()


def wait_burned(log: Path, serial: str, timeout: float) -> float | None:
    """When ``serial``'s burn row is first seen in the provisioning log (host time)."""
    needle = f",{serial},".encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and needle in log.read_bytes():
            return time.time()
        time.sleep(0.01)
    return None


def summary(values: list[float]) -> dict[str, float]:
    """Median, min, max in seconds (3 decimals)."""
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def main() -> int:
    """Run and report."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=15)
    ap.add_argument("--old", help="run the daemon on this PYTHONPATH folder's code first")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    server = PgServer().start()
    runs: list[dict[str, Any]] = []
    try:
        codes = ([("main", args.old)] if args.old else []) + [("this tree", None)]
        for code, old in codes:
            for store in ("sqlite", "postgresql"):
                from tokenstation.daemon.storage import schema
                from tokenstation.daemon.storage.postgres import PostgresDatabase
                from tokenstation.daemon.storage.secretbox import init_key

                work = Path(tempfile.mkdtemp(prefix="ts-bench-burnpath-"))
                url = key = None
                if store == "postgresql":
                    url = server.new_database(f"burnpath{len(runs)}")
                    schema.migrate(PostgresDatabase(url), schema.PARTS)
                    key = init_key(work / "store.key")
                result = run_station(work / "home", args.tokens, old, url or "", key)
                runs.append({"code": code, "store": store, **result})
                print(json.dumps(runs[-1]), file=sys.stderr)
    finally:
        server.stop()
    report({"machine": machine(), "runs": runs}, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
