"""Another station's changes reach this station's QueueState coalesced: a burst of them is
one re-read and one QueueState per short window, never one per change, and the last
QueueState carries the database's final count (a real PostgreSQL; the listening station
is a Provisioner on the shared queue, its station's events collected)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tokenstation.daemon.config import Config, DefaultSettings
from tokenstation.daemon.events import QueueState
from tokenstation.daemon.intake.otpauth import OtpAccount
from tokenstation.daemon.provisioning.queue import JobQueue, NewJob
from tokenstation.daemon.registry.store import Store
from tokenstation.daemon.storage.postgres import PostgresDatabase
from tokenstation.daemon.storage.secretbox import SecretBox
from tokenstation.daemon.token.secret import Secret

from station_rig import ProvRig

KEY = bytes(range(32))


def account(i: int) -> OtpAccount:
    return OtpAccount("totp", "ACME", f"user{i}", Secret(f"tokenstation-burst-{i:05d}".encode()))


async def until(check: object, what: str) -> None:
    for _ in range(1000):
        if callable(check) and check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(what)


def test_a_burst_of_100_changes_elsewhere_is_a_few_queuestates_ending_on_the_truth(
    tmp_path: Path, migrated_url: str
) -> None:
    pg_url = migrated_url
    other = JobQueue(PostgresDatabase(pg_url), station="desk-b", box=SecretBox(KEY))

    async def scenario() -> None:
        cfg = Config(token_defaults=DefaultSettings(confirmed=True), station_name="desk-c")
        queue = JobQueue(PostgresDatabase(pg_url), station="desk-c", box=SecretBox(KEY))
        rig = ProvRig(tmp_path, cfg, queue=queue)
        rig.station.store = Store(PostgresDatabase(pg_url), station="desk-c")
        rig.prov.start()
        # listening: a file queued at desk-b shows at desk-c
        jobs = other.take("f", "f.csv", "ok", [NewJob(account(i)) for i in range(150)]).queued
        await until(lambda: any(e.length == 150 for e in rig.of(QueueState)), "no QueueState")
        seen = len(rig.of(QueueState))

        def burst() -> None:  # 100 changes, each its own commit and notification
            for job in jobs[:100]:
                other.remove(job.id)

        await asyncio.to_thread(burst)
        await until(lambda: rig.of(QueueState)[-1].length == 50, "the last count not published")
        await asyncio.sleep(0.5)  # nothing more comes
        states = rig.of(QueueState)[seen:]
        assert 1 <= len(states) < 50, f"{len(states)} QueueStates for 100 changes"
        assert states[-1].length == other.waiting() == 50  # the database's count
        assert rig.prov.status()["queue_length"] == 50
        await rig.prov.stop()
        await rig.close()
        queue.close()
        rig.station.store.close()

    asyncio.run(scenario())
    other.close()
