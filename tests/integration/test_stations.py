"""Two stations, one PostgreSQL database: each daemon on its own private pcscd + vpcd,
its own simulated tokens and its own private dbus-daemon; the database is the session's
real PostgreSQL server (tests/conftest.py). Station A reuses the session's stack and
bus; station B gets its own."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pgserver import PgServer

from tokenstation.daemon.faults import CRASH_ENV, CRASH_STATUS
from tokenstation.daemon.simulator.privatebus import PrivateBus, timedated_service
from tokenstation.daemon.simulator.stack import PcscStack
from tokenstation.daemon.simulator.stations import station_config, write_config
from tokenstation.daemon.storage.postgres import PostgresDatabase

from conftest import TRANSCRIPT, BusWatcher, DaemonProc, bus_env, run_cli, wait_until

pytestmark = pytest.mark.pcsc

S1, S2 = "86596320000101", "86596320000102"


@dataclass
class Site:
    """One station's private parts: PC/SC stack, bus, home folder."""

    name: str
    stack: PcscStack
    bus: str
    env: dict[str, str]
    home: Path


@pytest.fixture(scope="module")
def second_stack(pcsc_stack: PcscStack) -> Iterator[tuple[PcscStack, str]]:
    stack = PcscStack(readers=1).start()
    bus = PrivateBus(services=timedated_service()).start()
    yield stack, bus.address
    bus.stop()
    stack.cleanup()


@pytest.fixture
def sites(
    pcsc_stack: PcscStack,
    private_bus: str,
    second_stack: tuple[PcscStack, str],
    tmp_path: Path,
    pg_url: str,
) -> Iterator[tuple[Site, Site, str]]:
    a = Site("desk-a", pcsc_stack, private_bus, {}, tmp_path / "a")
    b = Site("desk-b", second_stack[0], second_stack[1], {}, tmp_path / "b")
    for s in (a, b):
        s.env = bus_env(s.stack, s.bus, s.home)
    key = tmp_path / "shared" / "store.key"
    assert run_cli(a.env, "store", "init-key", "--key-file", str(key)).returncode == 0
    for s in (a, b):
        write_config(s.home, station_config(pg_url, key, s.name, lease_s=1.5))
    yield a, b, pg_url


def key_of(site: Site) -> Path:
    """The store key file the site's daemon uses (one for both sites)."""
    return site.home.parent / "shared" / "store.key"


class Sim:
    """A simulated token in a slot of any station's stack (waits on the station's signals)."""

    def __init__(self, site: Site, serial: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tokenstation.daemon",
                "simulate",
                "--port",
                str(site.stack.port(0)),
                "--serial",
                serial,
                *args,
            ],
            env=site.stack.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        TRANSCRIPT.append(("simulator", self.proc.stdout.read() if self.proc.stdout else ""))


def start(site: Site, tmp: Path, extra_env: dict[str, str] | None = None) -> DaemonProc:
    return DaemonProc({**site.env, **(extra_env or {})}, [], tmp / f"{site.name}.log")


def queue_file(site: Site, tmp: Path, n: int, serial: str = "") -> None:
    seed = base64.b32encode(f"tokenstation-test-{n:05d}".encode()).decode().rstrip("=")
    path = tmp / (f"{serial}.uri" if serial else f"job{n}.uri")
    path.write_text(f"otpauth://totp/ACME:user{n}?secret={seed}&issuer=ACME\n")
    done = run_cli(site.env, "queue", "add", str(path))
    assert done.returncode == 0, done.stderr


def jobs(site: Site) -> list[dict[str, Any]]:
    done = run_cli(site.env, "queue", "list", "--all", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["jobs"]  # type: ignore[no-any-return]


def test_two_stations_share_one_queue_and_one_registry(
    sites: tuple[Site, Site, str], tmp_path: Path
) -> None:
    a, b, url = sites
    refused = run_cli(a.env, "daemon", timeout=30)  # the schema is not there yet
    assert refused.returncode == 1
    assert "run `tokenstation store migrate`" in refused.stderr
    migrated = run_cli(a.env, "store", "migrate")
    assert migrated.returncode == 0 and "version 0 -> " in migrated.stdout, migrated.stderr

    da, db = start(a, tmp_path), start(b, tmp_path)
    wa, wb = BusWatcher(a.bus), BusWatcher(b.bus)
    sims: list[Sim] = []
    try:
        # A job queued at A is announced at B at once (LISTEN/NOTIFY, no polling).
        queue_file(a, tmp_path, 150)
        wb.expect("QueueState", length=1)
        # B is the first station with an eligible token: B burns it, once.
        sims.append(Sim(b, S1))
        done = wb.expect("BurnDone", timeout=15, serial=S1)
        assert done["job"]["station"] == "desk-a"
        assert done["job"]["claimed_by"] == "desk-b"
        wa.expect("QueueState", length=0)
        (job,) = jobs(a)
        assert (job["state"], job["burned_serial"], job["claimed_by"]) == ("burned", S1, "desk-b")
        sims.pop().stop()

        # The token moved to A, 30 s fast: A knows its settings from B's burn (no confirmed
        # defaults anywhere) and offers the sync.
        sims.append(Sim(a, S1, "--clock-offset", "30"))
        measured = wa.expect("DriftDetected", timeout=15, serial=S1)
        assert measured["settings_source"] == "registry"
        assert measured["sync_offered"] is True
        tokens = json.loads(run_cli(a.env, "tokens", "--json").stdout)["tokens"]
        (s1,) = [t for t in tokens if t["serial"] == S1]
        assert s1["last_operation"]["station"] == "desk-b"
        status = json.loads(run_cli(b.env, "status", "--json").stdout)
        assert status["station"] == "desk-b"
        assert status["store"]["backend"] == "postgresql" and status["store"]["reachable"]
        assert "Station:    desk-b; store postgresql" in run_cli(b.env, "status").stdout
        assert f"burned onto {S1} by desk-b" in run_cli(a.env, "queue", "list", "--all").stdout
        # One row in the shared provisioning log, naming the station that burned.
        shared = PostgresDatabase(url)
        rows = shared.execute("SELECT station, serial, job_id FROM provisioning_log").fetchall()
        shared.close()
        assert rows == [("desk-b", S1, str(job["id"]))]
    finally:
        for sim in sims:
            sim.stop()
        for w in (wa, wb):
            w.close()
        da.stop()
        db.stop()
    # No daemon running: `tokens` reads the shared registry itself.
    offline = json.loads(run_cli(b.env, "tokens", "--json").stdout)
    assert offline["via"] == "registry"
    assert [t["last_operation"]["station"] for t in offline["tokens"] if t["serial"] == S1] == [
        "desk-b"
    ]


def test_a_station_dying_with_a_claim_releases_it_after_the_lease_never_burning_twice(
    sites: tuple[Site, Site, str], tmp_path: Path
) -> None:
    a, b, url = sites
    assert run_cli(a.env, "store", "migrate").returncode == 0
    # A dies right after its claim (the burn's intent) is committed, before the seed write
    # ends: as kill -9 or a power cut at that instant would.
    da = start(a, tmp_path, {CRASH_ENV: "intent"})
    db = start(b, tmp_path)
    wb = BusWatcher(b.bus)
    sims: list[Sim] = []
    try:
        queue_file(b, tmp_path, 151)
        sims.append(Sim(a, S2))
        wait_until(lambda: da.proc.poll() is not None, 20.0, "station A's crash point")
        assert da.proc.returncode == CRASH_STATUS
        (job,) = jobs(b)
        assert (job["state"], job["claimed_by"]) == ("burning", "desk-a")
        # A's bus is free again; a station there that calls itself desk-b while B runs is
        # refused before it reads anything (it would settle B's claims as its own).
        twin = a.home / "twin.toml"
        twin.write_text(station_config(url, key_of(a), "desk-b", lease_s=1.5))
        refused = run_cli(a.env, "daemon", "--config", str(twin), timeout=30)
        assert refused.returncode == 4  # refused: the name is taken
        assert "another station named 'desk-b' is running on" in refused.stderr
        # The lease (1.5 s) runs out; B settles the claim: failed, never back to a burn.
        wait_until(lambda: jobs(b)[0]["state"] == "failed", 10.0, "the claim to expire")
        (job,) = jobs(b)
        assert "station desk-a stopped answering" in job["reason"]
        tokens = json.loads(run_cli(b.env, "tokens", "--json").stdout)["tokens"]
        (s2,) = [t for t in tokens if t["serial"] == S2]
        assert s2["provisioned"] is True and s2["settings_known"] is False
        # Retried, the job does not go onto S2 (it may hold the seed) at B either.
        sims.pop().stop()
        assert run_cli(b.env, "queue", "retry", str(job["id"])).returncode == 0
        sims.append(Sim(b, S2))
        wb.expect("TokenMeasured", timeout=15, serial=S2)
        time.sleep(1.0)
        assert wb.count("BurnDone") == 0
        assert jobs(b)[0]["state"] == "queued"
    finally:
        for sim in sims:
            sim.stop()
        wb.close()
        da.stop()
        db.stop()


def test_the_database_unreachable_tokens_are_still_read_and_drops_wait(
    start_daemon: Any,
    simulator: Any,
    cli_bus: Any,
    station_env: dict[str, str],
    tmp_path: Path,
) -> None:
    """Its own server (stopped and started again here), not the session's."""
    server = PgServer().start()
    try:
        url = server.new_database()
        key = tmp_path / "store.key"
        assert cli_bus("store", "init-key", "--key-file", str(key)).returncode == 0
        assert cli_bus("store", "migrate", "--store", url).returncode == 0
        daemon, bus = start_daemon(
            "--store", url, config=f'[store]\nkey_file = "{key}"\n[station]\nname = "desk-c"\n'
        )

        def status() -> dict[str, Any]:
            return json.loads(cli_bus("status", "--json").stdout)  # type: ignore[no-any-return]

        assert status()["store"]["reachable"] is True
        server.pause()  # hung first (neither answering nor closing): the daemon still answers
        wait_until(lambda: status()["store"]["reachable"] is False, 20.0, "unreachable")
        assert "UNREACHABLE" in cli_bus("status").stdout
        gone = bus.expect("StoreReachability", reachable=False)
        assert "no burns until it is back" in gone["message"]
        server.halt()  # then down
        # Tokens are still read and measured.
        simulator("--serial", S1)
        bus.expect("TokenMeasured", timeout=15, serial=S1)
        # A file given to `queue add` is refused with the reason; a dropped one waits.
        uri = tmp_path / "job.uri"
        seed = base64.b32encode(b"tokenstation-test-00152").decode().rstrip("=")
        uri.write_text(f"otpauth://totp/ACME:user152?secret={seed}&issuer=ACME\n")
        refused = cli_bus("queue", "add", str(uri))
        assert refused.returncode != 0 and "cannot be reached" in refused.stderr
        drop = Path(station_env["XDG_DATA_HOME"]) / "tokenstation" / "drop"
        (drop / "job.uri").write_bytes(uri.read_bytes())
        wait_until(lambda: "job.uri waits" in daemon.output(), 10.0, "the file to wait")
        assert not list((drop / "failed").glob("job*"))
        # Back: the waiting file is taken, once.
        server.start()
        wait_until(lambda: status()["store"]["reachable"] is True, 15.0, "reachable again")
        bus.expect("StoreReachability", reachable=True)
        wait_until(lambda: status()["queue_length"] == 1, 10.0, "the waiting file's job")
        assert cli_bus("queue", "add", str(uri)).returncode != 0  # the same secret: not twice
        assert status()["queue_length"] == 1
    finally:
        server.stop()
