"""Several stations on one PostgreSQL database: exactly-once burns, kill -9, notification latency.

A private PostgreSQL server (Debian's, started here, fsync off) and station processes
that use tokenstation's own shared queue (``JobQueue`` on ``PostgresDatabase``, seeds
sealed with a ``SecretBox``), each with its own connections and station name. A
"burn" here is the queue's half of one: claim (``SELECT ... FOR UPDATE SKIP LOCKED``,
intent and lease committed), open the sealed seed, a 5 ms pause standing for the card
write, mark burned, append the provisioning-log row. No card is written: the token
side of a burn across stations is the integration test (tests/integration/
test_stations.py, two full daemons with simulated tokens).

    .venv/bin/python bench/bench_stations.py [--jobs 300] [--stations 3] [--kills 20]
        [--notifications 100] [--json FILE]

With ``--daemons`` the same targets with real stations instead: each a
``tokenstation daemon`` with its own private pcscd + vpcd, its own dbus-daemon and
simulated tokens (``daemon/simulator/stations.py``, as the integration test), all on
one database in station mode. Job files are dropped into random stations' drop folders;
three "operators" place fresh simulated tokens (a new serial each) on random free
stations until every job is burned; a sample of burned tokens is then placed, 30 s
fast, at another station (settings from the shared registry, sync offered, no
confirmed defaults); then ``--kills`` rounds SIGKILL a station's daemon with a claim
held: mid-claim (the claim committed, the token holding up its GET CHALLENGE answer,
nothing written) or mid-burn (the seed written, the token holding up its answer), and
time until another station settles the claim; the token is then placed at another
station with a job waiting (nothing may be burned onto it), the job retried and burned
onto a fresh token. Checks come from the shared provisioning log and jobs table.

    .venv/bin/python bench/bench_stations.py --daemons [--jobs 300] [--kills 20]
        [--moves 20] [--lease 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchlib import machine, report
from pgserver import PgServer

from tokenstation.daemon.intake.otpauth import OtpAccount
from tokenstation.daemon.provisioning.queue import JobQueue, NewJob
from tokenstation.daemon.storage import schema
from tokenstation.daemon.storage.postgres import PostgresDatabase
from tokenstation.daemon.storage.secretbox import SecretBox
from tokenstation.daemon.token.secret import Secret

KEY = bytes(range(32))
LEASE_S = 1.0


def open_queue(url: str, station: str) -> JobQueue:
    return JobQueue(PostgresDatabase(url), station=station, box=SecretBox(KEY), lease_s=LEASE_S)


def accounts(start: int, n: int) -> list[NewJob]:
    return [
        NewJob(OtpAccount("totp", "ACME", f"user{i}", Secret(f"bench-seed-{i:08d}".encode())))
        for i in range(start, start + n)
    ]


# -- a station process ----------------------------------------------------------------------


def worker(url: str, station: str, hold: str) -> int:
    """Burn queued jobs until none is left; ``hold``: stop for good after the first claim
    ("claim": inside the claiming transaction; "burn": after the intent is committed)."""
    q = open_queue(url, station)
    n = 0
    while True:
        waiting = q.jobs(["queued"], limit=20)
        if not waiting:
            return 0
        job = random.choice(waiting)  # a token placed at this station takes some job
        serial = f"{station}-{n:06d}"
        if hold == "claim":
            with q._db.transaction():  # the row locked, the claim never committed
                q._db.execute("SELECT id FROM jobs WHERE id = ? FOR UPDATE", (job.id,))
                print(f"holding {job.id}", flush=True)
                time.sleep(3600)
        try:
            q.start_burn(job.id, serial)
        except ValueError:
            continue  # another station got it first
        if hold == "burn":
            print(f"holding {job.id}", flush=True)
            time.sleep(3600)
        q.secret(job.id)
        time.sleep(0.005)  # the card write
        done = q.burned(job.id, serial)
        q.log_burn(
            {
                "time_utc": "-",
                "station": station,
                "serial": serial,
                "model": "bench",
                "issuer": done.issuer,
                "account": done.account,
                "secret_fingerprint": done.fingerprint,
                "algorithm": done.algorithm,
                "period": done.period,
                "job_id": done.id,
                "source": done.source,
            }
        )
        n += 1


def spawn(url: str, station: str, hold: str = "") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "--worker", url, station, hold or "-"],
        stdout=subprocess.PIPE,
        text=True,
    )


# -- the measurements ----------------------------------------------------------------------


def exactly_once(server: PgServer, jobs: int, stations: int) -> dict[str, Any]:
    url = server.new_database("once")
    db = PostgresDatabase(url)
    schema.migrate(db, schema.PARTS)
    per = jobs // stations
    for s in range(stations):  # each station queues its share of the jobs
        q = open_queue(url, f"station-{s}")
        q.take(f"file{s}", f"batch{s}.csv", "ok", accounts(s * per, per))
        q.close()
    began = time.monotonic()
    procs = [spawn(url, f"station-{s}") for s in range(stations)]
    for p in procs:
        p.wait()
    took = time.monotonic() - began
    rows = db.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall()
    logged = db.execute("SELECT job_id, count(*) FROM provisioning_log GROUP BY job_id").fetchall()
    by_station = db.execute(
        "SELECT claimed_by, count(*) FROM jobs GROUP BY claimed_by ORDER BY claimed_by"
    ).fetchall()
    serials = db.execute(
        "SELECT count(DISTINCT burned_serial), count(*) FROM jobs WHERE state = 'burned'"
    ).fetchone()
    held = db.execute("SELECT count(*) FROM jobs WHERE secret IS NOT NULL").fetchone()[0]
    db.close()
    states = dict(rows)
    return {
        "jobs": jobs - jobs % stations,
        "stations": stations,
        "states": states,
        "burned_once": states.get("burned") == per * stations
        and len(logged) == per * stations
        and all(c == 1 for _j, c in logged)
        and serials[0] == serials[1],
        "burned_by_station": dict(by_station),
        "seeds_left_in_db": held,
        "seconds": round(took, 2),
        "burns_per_s": round(per * stations / took, 1),
    }


def kills(server: PgServer, rounds: int) -> dict[str, Any]:
    """kill -9 a station holding a claim: mid-claim (row locked, not committed) and
    mid-burn (intent committed), alternately; time until the job can be had again."""
    url = server.new_database("kill")
    db = PostgresDatabase(url)
    schema.migrate(db, schema.PARTS)
    keeper = open_queue(url, "survivor")
    keeper.take("f", "kills.csv", "ok", accounts(0, rounds))
    back_claim: list[float] = []
    back_burn: list[float] = []
    for r in range(rounds):
        hold = "claim" if r % 2 == 0 else "burn"
        victim = spawn(url, f"victim-{r}", hold)
        assert victim.stdout is not None
        job_id = int(victim.stdout.readline().split()[1])
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        killed = time.monotonic()
        while True:
            if hold == "claim":
                try:  # the server ended the dead transaction: claimable at once
                    keeper.start_burn(job_id, f"token-{r}")
                    keeper.back_to_queue(job_id, "bench: only checking it can be claimed")
                    back_claim.append(time.monotonic() - killed)
                    break
                except ValueError:
                    pass
            elif any(j.id == job_id for j in keeper.expire()):
                back_burn.append(time.monotonic() - killed)
                keeper.retry(job_id)  # a person checked the token: burn it elsewhere
                break
            time.sleep(0.01)
    # The survivors burn everything that is left; nothing may be burned twice.
    for p in [spawn(url, "survivor-a"), spawn(url, "survivor-b")]:
        p.wait()
    logged = db.execute("SELECT job_id, count(*) FROM provisioning_log GROUP BY job_id").fetchall()
    states = dict(db.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
    keeper.close()
    db.close()
    return {
        "rounds": rounds,
        "states_after": states,
        "nothing_burned_twice": all(c == 1 for _j, c in logged) and len(logged) == rounds,
        "mid_claim_back_after_s": _med(back_claim),
        "mid_burn_back_after_s (lease 1 s)": _med(back_burn),
    }


def notifications(server: PgServer, n: int) -> dict[str, Any]:
    """A job queued at station A -> station B's queue-changed callback."""
    url = server.new_database("notify")
    db = PostgresDatabase(url)
    schema.migrate(db, schema.PARTS)
    db.close()
    a, b = open_queue(url, "A"), open_queue(url, "B")
    heard = threading.Event()
    at: list[float] = []
    up = threading.Event()

    def on_change(_what: str) -> None:
        at.append(time.perf_counter())
        heard.set()

    b.listen(on_change, lambda ok: up.set() if ok else None)
    up.wait(10)
    from_call: list[float] = []
    from_commit: list[float] = []
    for i in range(n):
        heard.clear()
        t0 = time.perf_counter()
        a.take(f"n{i}", f"n{i}.png", "ok", accounts(10_000 + i, 1))
        t1 = time.perf_counter()
        if not heard.wait(5):
            raise SystemExit("a notification was lost")
        from_call.append((at[-1] - t0) * 1000)
        from_commit.append((at[-1] - t1) * 1000)
        time.sleep(0.01)
    a.close()
    b.close()
    return {
        "changes": n,
        "take_call_to_other_station_ms": _ms(from_call),
        "after_commit_to_other_station_ms": _ms(from_commit),
    }


def daemon_notifications(server: PgServer, n: int, work: Path) -> dict[str, Any]:
    """Two full daemons (each its own pcscd + vpcd and dbus-daemon) on one database: a
    file queued at A over D-Bus -> the QueueState signal of B on B's bus."""
    import asyncio
    import base64

    from benchlib import running_daemon

    from tokenstation.daemon.bus.client import StationClient

    url = server.new_database("daemons")
    db = PostgresDatabase(url)
    schema.migrate(db, schema.PARTS)
    db.close()
    key = work / "store.key"
    key.write_text("tokenstation store key v1\n" + base64.b64encode(KEY).decode() + "\n")
    key.chmod(0o600)
    for name in ("a", "b"):
        (work / name).mkdir()
        (work / f"{name}.toml").write_text(
            f'[store]\nurl = "{url}"\nkey_file = "{key}"\n[station]\nname = "desk-{name}"\n'
        )

    async def measure(bus_a: str, bus_b: str) -> list[tuple[float, float]]:
        a = await StationClient.connect("session", bus_a)
        b = await StationClient.connect("session", bus_b)
        heard: asyncio.Queue[float] = asyncio.Queue()

        def on_signal(name: str, _payload: dict[str, Any]) -> None:
            if name == "QueueState":
                heard.put_nowait(time.perf_counter())

        await b.subscribe(on_signal)
        out: list[tuple[float, float]] = []
        for i in range(n):
            path = work / f"job{i}.uri"
            seed = base64.b32encode(f"bench-daemon-{i:06d}".encode()).decode().rstrip("=")
            path.write_text(f"otpauth://totp/ACME:d{i}?secret={seed}&issuer=ACME\n")
            t0 = time.perf_counter()
            await a.ingest(str(path))
            t1 = time.perf_counter()
            got = await asyncio.wait_for(heard.get(), 5)
            out.append(((got - t0) * 1000, (got - t1) * 1000))
            await asyncio.sleep(0.05)
        await a.close()
        await b.close()
        return out

    with (
        running_daemon(work / "a", 1, "--config", str(work / "a.toml")) as da,
        running_daemon(work / "b", 1, "--config", str(work / "b.toml")) as dbn,
    ):
        for d in (da, dbn):  # until each is ready
            log = Path(d.env["HOME"]) / "daemon.log"
            deadline = time.monotonic() + 30
            while "daemon ready" not in log.read_text():
                if time.monotonic() > deadline or d.proc.poll() is not None:
                    raise SystemExit(f"a daemon did not start: {log.read_text()[-500:]}")
                time.sleep(0.1)
        timings = asyncio.run(measure(da.bus.address, dbn.bus.address))
    return {
        "changes": n,
        "ingest_call_at_A_to_signal_at_B_ms": _ms([t for t, _ in timings]),
    }


# -- real daemons ------------------------------------------------------------------------------


class Rig:
    """N full stations (daemon, pcscd + vpcd, dbus-daemon each) on one database."""

    def __init__(self, server: PgServer, work: Path, stations: int, lease_s: float) -> None:
        from tokenstation.daemon.simulator.stations import SiteParts, station_config, write_config
        from tokenstation.daemon.storage.secretbox import init_key

        self.url = server.new_database("daemons")
        self.db = PostgresDatabase(self.url)
        schema.migrate(self.db, schema.PARTS)
        key = init_key(work / "shared" / "store.key")
        self.sites: list[SiteParts] = []
        for i in range(stations):
            site = SiteParts(f"desk-{i}", work / f"desk-{i}")
            write_config(site.home, station_config(self.url, key, site.name, lease_s=lease_s))
            self.sites.append(site)
        for site in self.sites:
            site.start_daemon()
        self.free = [threading.Lock() for _ in self.sites]
        self.serial_n = 0
        self.serial_lock = threading.Lock()

    def new_serial(self) -> str:
        with self.serial_lock:
            self.serial_n += 1
            return f"86596329{self.serial_n:06d}"

    def drop(self, site: int, n: int) -> None:
        """A job file in a station's drop folder."""
        folder = self.sites[site].home / "data" / "tokenstation" / "drop"
        seed = base64.b32encode(f"bench-daemons-{n:08d}".encode()).decode().rstrip("=")
        tmp = folder.parent / f".job{n}.tmp"
        tmp.write_text(f"otpauth://totp/ACME:user{n}?secret={seed}&issuer=ACME\n")
        os.replace(tmp, folder / f"job{n}.uri")

    def one(self, sql: str, args: tuple[object, ...] = ()) -> Any:
        return self.db.execute(sql, args).fetchone()

    def logged(self, serial: str) -> bool:
        row = self.one("SELECT count(*) FROM provisioning_log WHERE serial = ?", (serial,))
        return bool(row[0])

    def burned_onto(self, serial: str) -> bool:
        row = self.one(
            "SELECT count(*) FROM jobs WHERE state = 'burned' AND burned_serial = ?", (serial,)
        )
        return bool(row[0])

    def settled(self) -> None:
        """Until every burned job's provisioning-log row is written (just after)."""
        _wait(
            lambda: (
                self.one("SELECT count(*) FROM jobs WHERE state = 'burned'")[0]
                <= self.one("SELECT count(*) FROM provisioning_log")[0]
            ),
            30,
            "the provisioning log",
        )

    def close(self) -> None:
        for site in self.sites:
            site.close()
        self.db.close()


def _wait(predicate: Any, timeout: float, what: str) -> float:
    began = time.monotonic()
    while not predicate():
        if time.monotonic() - began > timeout:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - began


def daemon_burns(rig: Rig, jobs: int, operators: int) -> dict[str, Any]:
    """Jobs dropped at random stations; fresh tokens placed at random free stations until
    every job is burned; then a sample of burned tokens moved to another station."""

    rng = random.Random(15)
    base = rig.one("SELECT count(*) FROM jobs")[0]
    for n in range(jobs):
        rig.drop(rng.randrange(len(rig.sites)), n)
    queued_s = _wait(
        lambda: rig.one("SELECT count(*) FROM jobs")[0] >= base + jobs, 300, "the drops"
    )
    per_burn: list[float] = []
    misses: list[str] = []
    burned_at: dict[str, int] = {}
    lock = threading.Lock()

    def waiting() -> int:
        return int(rig.one("SELECT count(*) FROM jobs WHERE state = 'queued'")[0])

    def burning_at(s: int) -> bool:
        row = rig.one(
            "SELECT count(*) FROM jobs WHERE state = 'burning' AND claimed_by = ?",
            (rig.sites[s].name,),
        )
        return bool(row[0])

    def operator(seed: int) -> None:
        r = random.Random(seed)
        while waiting() > 0:
            order = list(range(len(rig.sites)))
            r.shuffle(order)
            for s in order:
                if rig.free[s].acquire(blocking=False):
                    break
            else:
                time.sleep(0.02)
                continue
            try:
                serial = rig.new_serial()
                t0 = time.monotonic()
                proc = rig.sites[s].token(serial)
                try:
                    _wait(
                        lambda serial=serial, s=s: (
                            rig.logged(serial) or (waiting() == 0 and not burning_at(s))
                        ),
                        60,
                        f"{serial} burned",
                    )
                    if rig.burned_onto(serial):
                        with lock:
                            per_burn.append(time.monotonic() - t0)
                            burned_at[serial] = s
                finally:
                    rig.sites[s].take_off(proc, serial)
            except RuntimeError as exc:
                with lock:
                    misses.append(str(exc))
            finally:
                rig.free[s].release()

    began = time.monotonic()
    threads = [threading.Thread(target=operator, args=(i,)) for i in range(operators)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - began
    rig.settled()
    logged = rig.db.execute(
        "SELECT job_id, count(*) FROM provisioning_log GROUP BY job_id"
    ).fetchall()
    states = dict(rig.db.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
    serials = rig.one("SELECT count(DISTINCT serial), count(*) FROM provisioning_log")
    by_station = dict(
        rig.db.execute("SELECT station, count(*) FROM provisioning_log GROUP BY station").fetchall()
    )
    queued_by = dict(
        rig.db.execute("SELECT station, count(*) FROM jobs GROUP BY station").fetchall()
    )
    return {
        "jobs": jobs,
        "all_dropped_jobs_queued_s": round(queued_s, 2),
        "states": states,
        "burned_exactly_once": states.get("burned") == base + jobs
        and len(logged) == base + jobs
        and all(c == 1 for _j, c in logged)
        and serials[0] == serials[1],
        "queued_by_station": queued_by,
        "burned_by_station": by_station,
        "seeds_left_in_db": rig.one("SELECT count(*) FROM jobs WHERE secret IS NOT NULL")[0],
        "token_placed_to_job_burned_s": _med(per_burn),
        "operator_misses": misses[:5],
        "seconds": round(took, 1),
        "burns_per_min": round(len(per_burn) / took * 60, 1),
        "_burned_at": burned_at,
    }


def cross_station_syncs(rig: Rig, burned_at: dict[str, int], sample: int) -> dict[str, Any]:
    """Burned tokens placed, 30 s fast, at another station: settings from the registry,
    sync offered (no confirmed defaults anywhere), nothing burned onto them."""

    rng = random.Random(16)
    picks = rng.sample(sorted(burned_at), min(sample, len(burned_at)))
    ok = 0
    seen: list[dict[str, Any]] = []
    for serial in picks:
        s = (burned_at[serial] + 1 + rng.randrange(len(rig.sites) - 1)) % len(rig.sites)
        site = rig.sites[s]
        proc = site.token(serial, "--clock-offset", "30")
        found: dict[str, Any] = {}

        def measured(site: Any = site, serial: str = serial, found: dict[str, Any] = found) -> bool:
            done = subprocess.run(
                [sys.executable, "-m", "tokenstation.daemon", "status", "--json"],
                env=site.env,
                capture_output=True,
                text=True,
                check=False,
            )
            for p in json.loads(done.stdout or "{}").get("present", []):
                if p.get("serial") == serial and p.get("verdict"):
                    found.update(p)
                    return True
            return False

        try:
            _wait(measured, 30, f"{serial} measured at {site.name} ({site.log_tail(1500)})")
        finally:
            site.take_off(proc, serial)
        good = (
            found.get("settings_source") == "registry"
            and found.get("sync_offered") is True
            and not rig.one(
                "SELECT count(*) - 1 FROM provisioning_log WHERE serial = ?", (serial,)
            )[0]
        )
        ok += good
        if not good:
            seen.append({k: found.get(k) for k in ("serial", "settings_source", "sync_offered")})
    return {
        "moved_tokens": len(picks),
        "registry_settings_and_sync_offered": ok,
        "not_ok": seen[:5],
    }


def daemon_kills(rig: Rig, rounds: int, lease_s: float) -> dict[str, Any]:
    """SIGKILL a station's daemon mid-claim (the claim committed, the card's
    authentication held up by the token) or mid-burn (the seed written, its answer held
    up); another station settles the claim when the lease runs out; the token is then
    placed at another station (never burned again); the job is retried (as a person
    would) and burned onto a fresh token."""
    from tokenstation.daemon.simulator.stations import remove_token

    back: dict[str, list[float]] = {"claim": [], "burn": []}
    twice = 0
    written = {"claim": 0, "burn": 0}
    base = rig.one("SELECT count(*) FROM jobs")[0]
    for r in range(rounds):
        hold = "claim" if r % 2 == 0 else "burn"
        v = r % len(rig.sites)
        victim = rig.sites[v]
        rig.drop((v + 1) % len(rig.sites), 100_000 + r)
        _wait(lambda r=r: rig.one("SELECT count(*) FROM jobs")[0] >= base + r + 1, 60, "the drop")
        serial = rig.new_serial()
        state = victim.home / f"sim-{serial}.json"
        ins = "4b" if hold == "claim" else "c5"  # GET CHALLENGE / WRITE SEED
        proc = victim.token(serial, "--delay", "8", "--delay-ins", ins, "--state-file", str(state))
        try:
            claiming = (victim.name,)
            _wait(
                lambda claiming=claiming: (
                    rig.one(
                        "SELECT count(*) FROM jobs WHERE state = 'burning' AND claimed_by = ?",
                        claiming,
                    )[0]
                    > 0
                ),
                60,
                f"{victim.name}'s claim",
            )
            (job_id,) = rig.one(
                "SELECT id FROM jobs WHERE state = 'burning' AND claimed_by = ?", (victim.name,)
            )
            if hold == "burn":
                _wait(
                    lambda state=state: (
                        state.exists() and json.loads(state.read_text())["seed_writes"] > 0
                    ),
                    30,
                    "the seed write",
                )
            else:
                time.sleep(0.3)
            victim.kill9()
            killed = time.monotonic()
            written[hold] += json.loads(state.read_text())["seed_writes"] > 0
            back[hold].append(
                _wait(
                    lambda job_id=job_id: (
                        rig.one("SELECT state FROM jobs WHERE id = ?", (job_id,))[0] == "failed"
                    ),
                    lease_s * 4 + 30,
                    "the claim to be settled",
                )
            )
            _ = killed
        finally:
            remove_token(proc)
        victim.start_daemon()
        # The token at another station: it may hold the seed, so nothing is burned onto it
        # even though a job waits there.
        other = rig.sites[(v + 1) % len(rig.sites)]
        subprocess.run(
            [sys.executable, "-m", "tokenstation.daemon", "queue", "retry", str(job_id)],
            env=other.env,
            capture_output=True,
            check=True,
        )
        with rig.free[(v + 1) % len(rig.sites)]:
            again = other.token(serial)
            time.sleep(3.0)
            other.take_off(again, serial)
        rig.settled()
        twice += rig.logged(serial)
    # The retried jobs burn onto fresh tokens.
    drained = daemon_burns(rig, 0, len(rig.sites))
    logged = rig.db.execute(
        "SELECT job_id, count(*) FROM provisioning_log GROUP BY job_id"
    ).fetchall()
    total = rig.one("SELECT count(*) FROM jobs")[0]
    return {
        "rounds": rounds,
        "mid_claim_rounds": len(back["claim"]),
        "mid_burn_rounds": len(back["burn"]),
        "seed_written_before_kill": written,
        "killed_tokens_burned_again": twice,
        "every_job_burned_once_in_the_end": len(logged) == total
        and all(c == 1 for _j, c in logged),
        "states_after": drained["states"],
        f"mid_claim_settled_after_s (lease {lease_s} s)": _med(back["claim"]),
        f"mid_burn_settled_after_s (lease {lease_s} s)": _med(back["burn"]),
    }


def daemons_mode(args: argparse.Namespace) -> dict[str, Any]:
    server = PgServer().start()
    result: dict[str, Any] = {**machine(), "postgresql": server.psql("SHOW server_version").strip()}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-stations-daemons-") as work:
            rig = Rig(server, Path(work), args.stations, args.lease)
            try:
                burns = daemon_burns(rig, args.jobs, args.stations)
                burned_at = burns.pop("_burned_at")
                result["daemons_exactly_once"] = burns
                result["daemons_cross_station_sync"] = cross_station_syncs(
                    rig, burned_at, args.moves
                )
                if args.kills:
                    result["daemons_kill_9"] = daemon_kills(rig, args.kills, args.lease)
            finally:
                rig.close()
    finally:
        server.stop()
    return result


def _med(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "n": len(values),
        "median": round(statistics.median(values), 3),
        "max": round(max(values), 3),
    }


def _ms(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {
        "median": round(statistics.median(values), 2),
        "p95": round(values[int(len(values) * 0.95) - 1], 2),
        "max": round(values[-1], 2),
    }


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _flag, url, station, hold = sys.argv[1:5]
        return worker(url, station, "" if hold == "-" else hold)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=300)
    ap.add_argument("--stations", type=int, default=3)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--notifications", type=int, default=100)
    ap.add_argument("--daemon-notifications", type=int, default=30)
    ap.add_argument("--json", type=Path)
    ap.add_argument(
        "--daemons",
        action="store_true",
        help="real daemons: each station its own daemon, pcscd + vpcd, simulators and bus",
    )
    ap.add_argument("--lease", type=float, default=3.0, help="--daemons: the lease, seconds")
    ap.add_argument("--moves", type=int, default=10, help="--daemons: tokens moved to sync")
    args = ap.parse_args()
    if args.daemons:
        report(daemons_mode(args), args.json)
        return 0
    server = PgServer().start()
    try:
        result = {
            **machine(),
            "postgresql": server.psql("SHOW server_version").strip(),
            "exactly_once": exactly_once(server, args.jobs, args.stations),
            "kill_9": kills(server, args.kills),
            "notification": notifications(server, args.notifications),
        }
        with tempfile.TemporaryDirectory(prefix="bench-stations-") as work:
            result["notification_between_daemons"] = daemon_notifications(
                server, args.daemon_notifications, Path(work)
            )
    finally:
        server.stop()
    report(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
