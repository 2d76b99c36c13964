"""The shared backend against a real PostgreSQL server (tests/conftest.py starts it).

Two "stations" here are two sets of connections with different station names, as two
daemons would hold; the daemons themselves meet in tests/integration/test_stations.py.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from pathlib import Path

import pytest
from pgserver import PgServer

from tokenstation.daemon.intake.otpauth import OtpAccount
from tokenstation.daemon.provisioning.queue import JobQueue, NewJob, SealBroken
from tokenstation.daemon.registry.store import Operation, Store
from tokenstation.daemon.storage import schema
from tokenstation.daemon.storage.database import NameTaken, SchemaMismatch, StoreUnavailable
from tokenstation.daemon.storage.postgres import PostgresDatabase
from tokenstation.daemon.storage.secretbox import KeyProblem, SecretBox, init_key
from tokenstation.daemon.token.secret import Secret
from tokenstation.daemon.token.settings import HmacAlgorithm, TokenSettings

KEY = bytes(range(32))


def migrated(url: str) -> str:
    db = PostgresDatabase(url)
    schema.migrate(db, schema.PARTS)
    db.close()
    return url


def account(i: int) -> OtpAccount:
    seed = f"tokenstation-test-{i:05d}".encode()
    return OtpAccount("totp", "ACME", f"user{i}", Secret(seed))


def queue(url: str, station: str, *, lease_s: float = 30.0, key: bytes = KEY) -> JobQueue:
    return JobQueue(PostgresDatabase(url), station=station, box=SecretBox(key), lease_s=lease_s)


def test_an_empty_or_old_database_is_refused_with_the_command_to_run(pg_url: str) -> None:
    with pytest.raises(SchemaMismatch, match="tokenstation store migrate"):
        Store(PostgresDatabase(pg_url), station="A")
    db = PostgresDatabase(pg_url)
    assert schema.migrate(db, schema.PARTS) == {
        "registry": (0, schema.REGISTRY.version),
        "queue": (0, schema.QUEUE.version),
    }
    assert schema.migrate(db, schema.PARTS)["queue"] == (schema.QUEUE.version,) * 2
    db.execute("UPDATE meta SET value = '1' WHERE key = 'queue_schema_version'")
    needs = f"version 1, this tokenstation needs {schema.QUEUE.version}: run"
    with pytest.raises(SchemaMismatch, match=needs):
        queue(pg_url, "A")
    db.execute("UPDATE meta SET value = '99' WHERE key = 'queue_schema_version'")
    with pytest.raises(SchemaMismatch, match="newer than this tokenstation knows"):
        queue(pg_url, "A")
    db.close()


def test_a_second_live_station_with_the_same_name_is_refused_until_the_first_ends(
    pg_url: str,
) -> None:
    url = migrated(pg_url)
    first, other = queue(url, "desk-a"), queue(url, "desk-b")
    first.hold_name()
    other.hold_name()  # another name: no conflict
    first.hold_name()  # checked again while held: still ours
    twin = queue(url, "desk-a")
    with pytest.raises(
        NameTaken, match=r"another station named 'desk-a' is running on .*tokenstation .* pid \d+"
    ):
        twin.hold_name()
    first.close()  # its connection ends (as a crashed station's does): the name is free
    watch = PostgresDatabase(url)  # once its server process has ended (it does so on its own)
    held = (
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    for _ in range(1000):
        if watch.execute(held).fetchone()[0] == 1:  # desk-b's name only
            break
        time.sleep(0.01)
    watch.close()
    twin.hold_name()
    twin.close()
    other.close()


def test_a_station_whose_name_was_taken_claims_nothing_but_keeps_its_leases(
    pg_server: PgServer, pg_url: str
) -> None:
    url = migrated(pg_url)
    a = queue(url, "desk")
    a.hold_name()
    first, second = a.take("f1", "f1.png", "ok", [NewJob(account(i)) for i in (1, 2)]).queued
    a.start_burn(first.id, "86596320000001")
    dbname = url.split("?", 1)[0].rsplit("/", 1)[1]
    pg_server.psql(  # the name's connection ends (as in a server restart) ...
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = '{dbname}' AND application_name LIKE 'tokenstation %'"
    )
    twin = queue(url, "desk")
    twin.hold_name()  # ... and a same-named station came meanwhile
    with pytest.raises(NameTaken):
        a.hold_name()
    assert a.renew([first.id]) == 1  # the burn under way keeps its lease
    with pytest.raises(StoreUnavailable, match="another station named 'desk'"):
        a.start_burn(second.id, "86596320000002")  # but no new claim under that name
    assert a.get(second.id).state == "queued"  # type: ignore[union-attr]
    twin.close()
    a.hold_name()  # the name is this station's again: claims go on
    assert a.start_burn(second.id, "86596320000002").claimed_by == "desk"
    a.close()


def test_settings_written_at_one_station_are_known_at_another(pg_url: str) -> None:
    migrated(pg_url)
    a = Store(PostgresDatabase(pg_url), station="desk-a")
    b = Store(PostgresDatabase(pg_url), station="desk-b")
    settings = TokenSettings(HmacAlgorithm.SHA256, 60, 30)
    a.seen("86596320000001", "C302", 100.0)
    a.record_write("86596320000001", settings, 101.0, provisioned=True)
    a.record_operation(Operation("86596320000001", 101.0, "burn", "ok", "station; ACME:bob"))
    record = b.token("86596320000001")
    assert record is not None
    assert record.settings == settings and record.provisioned
    assert record.last_station == "desk-a"
    b.seen("86596320000001", "C302", 200.0)
    assert a.token("86596320000001").last_station == "desk-b"  # type: ignore[union-attr]
    assert [op.station for op in b.operations("86596320000001")] == ["desk-a"]
    a.close()
    b.close()


def test_of_two_stations_claiming_one_job_exactly_one_gets_it(pg_url: str) -> None:
    migrated(pg_url)
    a, b = queue(pg_url, "A"), queue(pg_url, "B")
    (job,) = a.take("f1", "f1.png", "ok", [NewJob(account(1))]).queued
    assert [j.station for j in b.jobs(["queued"])] == ["A"]
    wins: list[str] = []
    losses: list[str] = []
    start = threading.Barrier(2)

    def claim(q: JobQueue, serial: str) -> None:
        start.wait()
        try:
            q.start_burn(job.id, serial)
            wins.append(q.station)
        except ValueError as exc:
            losses.append(str(exc))

    threads = [threading.Thread(target=claim, args=(q, s)) for q, s in ((a, "1"), (b, "2"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and len(losses) == 1
    assert a.get(job.id).claimed_by == wins[0]  # type: ignore[union-attr]
    a.close()
    b.close()


def test_a_row_another_station_is_claiming_is_skipped_not_waited_for(pg_url: str) -> None:
    migrated(pg_url)
    a = queue(pg_url, "A")
    (job,) = a.take("f1", "f1.png", "ok", [NewJob(account(1))]).queued
    impatient = PostgresDatabase(pg_url)
    impatient.execute("SET lock_timeout = 1")  # a wait for the row's lock: an error at once
    b = JobQueue(impatient, station="B", box=SecretBox(KEY))
    holder = PostgresDatabase(pg_url)
    with holder.transaction():
        holder.execute("SELECT id FROM jobs WHERE id = ? FOR UPDATE", (job.id,))
        with pytest.raises(ValueError, match="being claimed by another station"):
            b.start_burn(job.id, "86596320000001")  # (StoreUnavailable if it had waited)
    assert b.start_burn(job.id, "86596320000001").claimed_by == "B"
    for q in (a, b):
        q.close()
    holder.close()


def test_a_claim_whose_station_stopped_answering_expires_as_failed(pg_url: str) -> None:
    migrated(pg_url)
    a = queue(pg_url, "A", lease_s=0.3)
    b = queue(pg_url, "B", lease_s=0.3)
    (job,) = a.take("f1", "f1.png", "ok", [NewJob(account(1))]).queued
    a.start_burn(job.id, "86596320000001")
    assert b.expire() == []  # the lease runs
    assert a.renew([]) == 0  # A renews only the claims it knows of: none
    assert b.recover() == []  # another station's claim is not B's to settle at start
    time.sleep(0.5)
    (expired,) = b.expire()
    assert expired.state == "failed" and "station A stopped answering" in expired.reason
    assert b.targeted("86596320000001")  # never burned onto again without a person
    assert b.expire() == []  # settled once
    b.retry(job.id)
    assert a.get(job.id).state == "queued"  # type: ignore[union-attr]
    a.close()
    b.close()


def test_a_station_renewing_its_lease_keeps_its_claim(pg_url: str) -> None:
    migrated(pg_url)
    a, b = queue(pg_url, "A"), queue(pg_url, "B")
    (job,) = a.take("f1", "f1.png", "ok", [NewJob(account(1))]).queued
    a.start_burn(job.id, "86596320000001")
    clock = PostgresDatabase(pg_url)  # the lease's time passes on the database's clock

    def age(left_s: float) -> None:
        clock.execute(
            f"UPDATE jobs SET lease_until = {clock.now} + ? WHERE id = ?", (left_s, job.id)
        )

    def left() -> float:
        row = clock.execute(f"SELECT lease_until - {clock.now} FROM jobs WHERE id = ?", (job.id,))
        return float(row.fetchone()[0])

    for _ in range(3):
        age(1.0)  # as if 29 of its 30 s had passed
        assert a.renew([job.id]) == 1
        assert left() > 20  # a whole lease again
        assert b.expire() == []
    age(-1.0)  # and once not renewed in time
    (expired,) = b.expire()
    assert expired.id == job.id and expired.state == "failed"
    a.close()
    b.close()
    clock.close()


def forms(raw: bytes) -> set[bytes]:
    b32 = base64.b32encode(raw)
    return {
        raw,
        b32,
        b32.rstrip(b"="),
        raw.hex().encode(),
        base64.b64encode(raw).rstrip(b"="),
        hashlib.sha256(raw).hexdigest().encode(),
    }


def test_no_seed_is_readable_in_a_dump_and_burned_seeds_are_gone(
    pg_server: PgServer, pg_url: str
) -> None:
    migrated(pg_url)
    a, b = queue(pg_url, "A"), queue(pg_url, "B")
    jobs = a.take("f1", "f1.png", "ok", [NewJob(account(i)) for i in range(5)]).queued
    dump = pg_server.dump(pg_url)
    assert b"COPY public.jobs" in dump and dump.count(b"\\\\x") >= 5  # the sealed seeds
    for i in range(5):
        for form in forms(account(i).secret.reveal()):
            assert form not in dump
    assert b.secret(jobs[0].id).reveal() == account(0).secret.reveal()  # B opens A's seals
    b.start_burn(jobs[0].id, "86596320000001")
    b.burned(jobs[0].id, "86596320000001")
    assert a.get(jobs[0].id).has_secret is False  # type: ignore[union-attr]
    with pytest.raises(KeyError):
        a.secret(jobs[0].id)
    a.close()
    b.close()


def test_a_station_with_another_key_cannot_open_or_claim(pg_url: str) -> None:
    migrated(pg_url)
    a, other = queue(pg_url, "A"), queue(pg_url, "B", key=bytes(32))
    (job,) = a.take("f1", "f1.png", "ok", [NewJob(account(1))]).queued
    with pytest.raises(SealBroken, match="same key file"):
        other.secret(job.id)
    with pytest.raises(SealBroken, match="same key file"):  # the claim is rolled back
        other.claim(job.id, "86596320000001", like=job)
    after = a.get(job.id)
    assert after is not None and after.state == "queued" and after.claimed_by == ""
    assert after.attempts == 0 and after.burned_serial is None
    assert a.claim(job.id, "86596320000001")[0].claimed_by == "A"
    a.close()
    other.close()


def test_a_sealed_seed_moved_to_another_row_does_not_open() -> None:
    box = SecretBox(KEY)
    sealed = box.seal(b"seed", 7, "86596320000001")
    assert box.open(sealed, 7, "86596320000001") == b"seed"
    assert box.open(sealed, 8, "86596320000001") is None
    assert box.open(sealed, 7, "") is None


def test_the_key_file_is_made_0600_once_and_refused_when_loose(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "store.key"
    init_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "keys").stat().st_mode & 0o777 == 0o700
    SecretBox.load(path)
    with pytest.raises(KeyProblem, match="exists already"):
        init_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(KeyProblem, match="chmod 600"):
        SecretBox.load(path)
    with pytest.raises(KeyProblem, match="tokenstation store init-key"):
        SecretBox.load(tmp_path / "missing.key")


def test_another_stations_change_is_notified_at_once(pg_url: str) -> None:
    migrated(pg_url)
    a, b = queue(pg_url, "desk a"), queue(pg_url, "desk b")  # names with a space
    heard: list[str] = []
    changed = threading.Event()
    states: list[bool] = []

    def on_change(what: str) -> None:
        heard.append(what.split(maxsplit=1)[0])
        changed.set()

    b.listen(on_change, states.append)
    deadline = time.monotonic() + 10
    while not states and time.monotonic() < deadline:
        time.sleep(0.01)
    assert states == [True]
    (job,) = a.take("f1", "f1.png", "ok", [NewJob(account(1))]).queued
    assert changed.wait(5)
    changed.clear()
    b.start_burn(job.id, "86596320000001")  # B's own change: not echoed to B
    a.remove(a.take("f2", "f2.png", "ok", [NewJob(account(2))]).queued[0].id)
    deadline = time.monotonic() + 5
    while len(heard) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert heard == ["added", "added", "removed"]
    a.close()
    b.close()


def test_an_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="cannot be reached"):
        PostgresDatabase(f"postgresql://nobody@/none?host={tmp_path}&connect_timeout=2")


def test_an_interrupted_molto2_burn_waits_for_its_own_station_and_never_expires(
    pg_url: str,
) -> None:
    """A Molto2 pulled after the seed write was sent, or a station stopped mid-burn:
    the job stays "burning" into its profile until the Molto2 is placed again at the
    station that claimed it (its ledger says which account is in which profile). No
    other station fails it as "stopped answering", nor resumes it."""
    migrated(pg_url)
    a, b = queue(pg_url, "A", lease_s=0.2), queue(pg_url, "B", lease_s=0.2)
    pulled, stopped = a.take("f1", "f1.csv", "ok", [NewJob(account(1)), NewJob(account(2))]).queued
    a.start_burn(pulled.id, "58000001", 4)
    a.interrupted(pulled.id, "the Molto2 left after the seed write was sent")
    a.start_burn(stopped.id, "58000001", 5)
    again = queue(pg_url, "A", lease_s=0.2)  # station A restarted
    assert [j.id for j in again.recover()] == [pulled.id, stopped.id]
    time.sleep(0.5)  # both leases would have run out
    assert b.expire() == []
    assert [j.state for j in b.jobs()] == ["burning", "burning"]
    assert b.interrupted_burns("58000001") == []  # A's to settle, not B's
    assert [(j.id, j.profile) for j in again.interrupted_burns("58000001")] == [
        (pulled.id, 4),
        (stopped.id, 5),
    ]
    for q in (a, b, again):
        q.close()


def test_a_retried_job_forgets_its_last_target(pg_url: str) -> None:
    migrated(pg_url)
    a = queue(pg_url, "A")
    (job,) = a.take("f1", "f1.csv", "ok", [NewJob(account(1))]).queued
    a.start_burn(job.id, "58000001", 7)
    a.failed(job.id, "the Molto2 refused")
    retried = a.retry(job.id)
    assert (retried.state, retried.profile, retried.burned_serial, retried.claimed_by) == (
        "queued",
        None,
        None,
        "",
    )
    assert not {"profile", "target_serial", "claimed_by"} & set(retried.as_dict())
    a.close()


def test_a_malformed_url_is_a_clear_error_without_its_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    with pytest.raises(StoreUnavailable, match="connection string cannot be read") as info:
        PostgresDatabase(f"postgresql://ann:s3cr%zzet@/none?host={tmp_path}")
    told = f"{info.value} {info.value.__cause__} {info.value.__context__} {caplog.text}"
    assert "s3cr" not in told and "zzet" not in told


def test_a_station_with_another_store_key_is_refused_at_start(pg_url: str, tmp_path: Path) -> None:
    """The daemon's start (service.open_stores): the first station's key is the
    database's; a station with another key file is refused before it queues or claims,
    with what to do; the right key still opens."""
    from tokenstation.daemon.config import Config, StoreConfig
    from tokenstation.daemon.service import StoreRefused, open_stores

    migrated(pg_url)

    def start(name: str, key: Path) -> tuple[Store, JobQueue]:
        cfg = Config(store=StoreConfig(url=pg_url, key_file=key), station_name=name)
        return open_stores(cfg, tmp_path / "unused.sqlite3", tmp_path / "unused-q.sqlite3")

    first_key, other_key = init_key(tmp_path / "a" / "store.key"), init_key(tmp_path / "b.key")
    store, jobs = start("A", first_key)
    with pytest.raises(StoreRefused, match=r"not the one the seeds .* are sealed with") as info:
        start("B", other_key)
    assert "copy the key file" in str(info.value)
    assert base64.b64encode(other_key.read_bytes()).decode() not in str(info.value)
    store.close()
    jobs.close()
    again = start("B", first_key)  # the same key as A's: accepted
    for part in again:
        part.close()


def test_stations_placing_tokens_together_each_claim_another_job_first_time(
    pg_url: str,
) -> None:
    """Ten stations chose the oldest free job at the same moment: each claims a job in one
    go (the oldest ten, each once), none is refused and none reads the queue again."""
    migrated(pg_url)
    stations = [queue(pg_url, f"S{i}") for i in range(10)]
    jobs = stations[0].take("f", "f.csv", "ok", [NewJob(account(i)) for i in range(15)]).queued
    oldest = stations[0].claimable("")[0]
    index = {j.id: i for i, j in enumerate(jobs)}
    claimed: list[tuple[str, int, bytes]] = []
    refused: list[str] = []
    start = threading.Barrier(len(stations))

    def place(q: JobQueue, serial: str) -> None:
        start.wait()
        try:
            job, seed = q.claim(oldest.id, serial, like=oldest)
            claimed.append((q.station, job.id, seed.reveal()))
        except ValueError as exc:
            refused.append(str(exc))

    threads = [
        threading.Thread(target=place, args=(q, f"8659632000{i:04d}"))
        for i, q in enumerate(stations)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert refused == []
    assert sorted(j for _, j, _ in claimed) == [j.id for j in jobs[:10]]
    for station, job_id, seed in claimed:
        job = stations[0].get(job_id)
        assert job is not None and job.state == "burning" and job.claimed_by == station
        assert seed == account(index[job_id]).secret.reveal()  # its own seed
    for q in stations:
        q.close()


def test_a_claim_like_a_job_takes_only_a_free_job_of_its_settings(pg_url: str) -> None:
    migrated(pg_url)
    a, b = queue(pg_url, "A"), queue(pg_url, "B")
    sha256 = OtpAccount("totp", "ACME", "sha", Secret(b"tokenstation-sha256-1"), "SHA256")
    bound = NewJob(account(2), serial="86596320000009")
    first, other, _ = a.take("f", "f.csv", "ok", [NewJob(account(1)), NewJob(sha256), bound]).queued
    a.start_burn(first.id, "86596320000001")
    with pytest.raises(ValueError, match="no other waiting job has its settings"):
        b.claim(first.id, "86596320000002", like=first)
    assert [j.state for j in a.jobs()] == ["burning", "queued", "queued"]
    job, _ = b.claim(other.id, "86596320000002", like=other)
    assert job.id == other.id and job.algorithm == "SHA256"
    a.close()
    b.close()
