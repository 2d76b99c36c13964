"""A station while the shared database is away: a burn whose record the database could
not take is still reported, kept here durably and settled when the database is back;
the queue length is answered from the last count.

The database is made unreachable for real: the PostgreSQL server refuses this database's
connections and ends the ones it has (the station's statements fail as they would with
the server gone).
"""

from __future__ import annotations

import asyncio
import csv
import json
import time
from collections.abc import Callable
from pathlib import Path

from pgserver import PgServer

from tokenstation.daemon.config import Config, DefaultSettings
from tokenstation.daemon.events import BurnDone, JobState, StoreReachability
from tokenstation.daemon.provisioning.away import NOTE
from tokenstation.daemon.provisioning.queue import JobQueue
from tokenstation.daemon.registry.store import Store
from tokenstation.daemon.storage.database import StoreUnavailable
from tokenstation.daemon.storage.postgres import PostgresDatabase
from tokenstation.daemon.storage.secretbox import SecretBox

from station_rig import C302, ProvRig

KEY = bytes(range(32))
URI = "otpauth://totp/Bitbucket:alice?secret=JBSWY3DPEHPK3PXP&issuer=Bitbucket"


def _dbname(url: str) -> str:
    return url.split("@/", 1)[1].split("?", 1)[0]


def cut(server: PgServer, url: str) -> None:
    """The database refuses connections and its sessions end: unreachable from here."""
    name = _dbname(url)
    server.psql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
    server.psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")


def mend(server: PgServer, url: str) -> None:
    server.psql(f"ALTER DATABASE {_dbname(url)} ALLOW_CONNECTIONS true")


async def until_answering(queue: JobQueue) -> None:
    """The station's own connection reconnected (its background thread does so)."""
    for _ in range(300):
        try:
            queue.waiting()
            return
        except StoreUnavailable:
            await asyncio.sleep(0.05)
    raise AssertionError("the store did not come back")


def shared_rig(tmp: Path, url: str, at_written: Callable[[], None] | None = None) -> ProvRig:
    """A station named desk-c on the shared database; ``at_written`` runs right after the
    seed write (the provisioner's crash point), before any bookkeeping."""

    def at_step(step: str) -> None:
        if step == "written" and at_written is not None:
            at_written()

    cfg = Config(token_defaults=DefaultSettings(confirmed=True), station_name="desk-c")
    queue = JobQueue(PostgresDatabase(url), station="desk-c", box=SecretBox(KEY), lease_s=0.5)
    rig = ProvRig(tmp, cfg, queue=queue, at_step=at_step)
    rig.station.store = Store(PostgresDatabase(url), station="desk-c")
    return rig


async def close(rig: ProvRig) -> None:
    await rig.close()
    rig.queue.close()
    rig.station.store.close()


def test_a_burn_the_database_could_not_record_is_reported_kept_and_settled_later(
    tmp_path: Path, pg_server: PgServer, migrated_url: str
) -> None:
    pg_url = migrated_url
    other = JobQueue(PostgresDatabase(pg_url), station="desk-b", box=SecretBox(KEY), lease_s=0.5)

    async def scenario() -> None:
        rig = shared_rig(tmp_path, pg_url, lambda: cut(pg_server, pg_url))
        job_id = await rig.add("alice.txt", URI)
        assert rig.prov.count() and rig.prov.queue_length() == 1
        rig.place()
        await rig.settle()
        done = await rig.prov.burn(job_id, C302)
        # Reported by the station that wrote the seed, with what happened.
        assert rig.of(BurnDone) == [done]
        assert done.note == NOTE
        assert done.job.state == JobState.BURNED and done.job.burned_serial == C302
        assert rig.token.snapshot()["seed_fingerprint"] == done.job.secret_fingerprint
        # Kept here, durably (no secret in it), and in the local provisioning log.
        kept = json.loads((tmp_path / "away-burns.json").read_text())
        assert [b["job_id"] for b in kept] == [job_id] and "JBSWY3DP" not in json.dumps(kept)
        assert oct((tmp_path / "away-burns.json").stat().st_mode & 0o777) == "0o600"
        rows = list(csv.reader((tmp_path / "provisioning-log.csv").open()))[1:]
        assert [r[2] for r in rows] == [C302]
        assert rig.of(StoreReachability)[-1].reachable is False
        # Status answers from the last count meanwhile, with the reachability.
        status = rig.prov.status()
        assert status["queue_length"] in (0, 1) and status["store"]["reachable"] is False
        # Back; another station gets there first and expires the claim (its lease ran out).
        mend(pg_server, pg_url)
        await until_answering(other)  # (its sessions were ended too)
        time.sleep(0.6)
        [expired] = other.expire()
        assert "desk-c stopped answering" in expired.reason
        await until_answering(rig.queue)
        rig.prov.settle_away()
        job = other.get(job_id)
        assert job is not None and job.state == "burned" and not job.has_secret
        assert "while the shared database was away" in job.reason
        assert "stopped answering" not in job.reason
        record = rig.station.store.token(C302)
        assert record is not None and record.provisioned and record.settings is not None
        ops = rig.station.store.operations(C302)
        assert [op.outcome for op in ops][-1] == "ok"
        shared_log = PostgresDatabase(pg_url)
        logged = shared_log.execute("SELECT station, serial FROM provisioning_log").fetchall()
        shared_log.close()
        assert logged == [("desk-c", C302)]
        assert json.loads((tmp_path / "away-burns.json").read_text()) == []
        assert job_id not in rig.prov.claims
        await close(rig)

    asyncio.run(scenario())
    other.close()


def test_an_away_burn_survives_a_restart_and_is_never_taken_as_interrupted(
    tmp_path: Path, pg_server: PgServer, migrated_url: str
) -> None:
    pg_url = migrated_url

    async def first() -> int:
        rig = shared_rig(tmp_path, pg_url, lambda: cut(pg_server, pg_url))
        job_id = await rig.add("alice.txt", URI)
        rig.place()
        await rig.settle()
        assert (await rig.prov.burn(job_id, C302)).note == NOTE
        await close(rig)  # the daemon stops before the database is back
        return job_id

    job_id = asyncio.run(first())
    mend(pg_server, pg_url)

    async def second() -> None:
        rig = shared_rig(tmp_path, pg_url)
        assert rig.prov.recover() == []  # settled as the burn it was, not "interrupted"
        job = rig.queue.get(job_id)
        assert job is not None and job.state == "burned"
        assert "while the shared database was away" in job.reason
        await close(rig)

    asyncio.run(second())
