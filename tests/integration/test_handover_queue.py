"""Seeds made here in the queue: sealed from the start, held after the burn, erased once
handed over (never by time while not exported)."""

from __future__ import annotations

import base64
import stat
import time
from pathlib import Path

import pytest
from pgserver import PgServer

from tokenstation.daemon.handover.generate import (
    Assignment,
    GenerateProblem,
    GenerateRequest,
    new_jobs,
    read_assignment,
)
from tokenstation.daemon.handover.held import held_records
from tokenstation.daemon.provisioning.queue import HANDOVER_KEY, JobQueue
from tokenstation.daemon.storage import schema
from tokenstation.daemon.storage.postgres import PostgresDatabase
from tokenstation.daemon.storage.secretbox import SecretBox

KEY = bytes(range(32))


def all_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def forms(seed: bytes) -> list[bytes]:
    return [seed, seed.hex().encode(), base64.b32encode(seed).rstrip(b"=")]


def burn_all(q: JobQueue, serial_base: int = 60700000) -> None:
    for job in q.jobs(["queued"]):
        q.start_burn(job.id, str(serial_base + job.id))
        q.burned(job.id, str(serial_base + job.id), model="C302-i")


def test_generated_seeds_are_sealed_held_then_erased(tmp_path: Path) -> None:
    q = JobQueue(tmp_path / "q" / "queue.sqlite3")
    req = GenerateRequest(count=3, issuer="ACME", algorithm="sha256", period=60)
    intake = q.add_generated("b1", new_jobs(req, "b1"))
    assert [j.label() for j in intake.queued] == ["ACME:b1-001", "ACME:b1-002", "ACME:b1-003"]
    seeds = [q.secret(j.id).reveal() for j in intake.queued]
    assert {len(s) for s in seeds} == {32} and len(set(seeds)) == 3
    key = tmp_path / "q" / HANDOVER_KEY
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    for seed in seeds:  # sealed while queued, too
        assert not any(f in all_bytes(tmp_path / "q") for f in forms(seed))

    burn_all(q)
    burned = q.jobs(["burned"])
    assert [j.handover for j in burned] == ["pending"] * 3 and not any(j.has_secret for j in burned)
    records = held_records(q)
    assert [r.seed.reveal() for _, r in records] == seeds
    first = records[0][1]
    assert (first.serial, first.model, first.algorithm, first.period) == (
        str(60700000 + burned[0].id),
        "C302-i",
        "sha256",
        60,
    )
    assert q.handover_counts() == {"pending": 3}

    assert q.erase_exported(exported_before=time.time() + 1e6) == 0  # never exported: kept
    q.mark_exported([records[0][0]])
    assert q.handover_counts() == {"pending": 2, "exported": 1}
    assert q.erase_exported(exported_before=time.time() - 3600) == 0  # exported just now
    assert q.erase_exported() == 1
    assert q.handover_counts() == {"pending": 2, "erased": 1}
    q.mark_exported([i for i, _ in records[1:]])
    assert q.erase_exported(batch="b1") == 2
    q.close()
    for seed in seeds:
        assert not any(f in all_bytes(tmp_path / "q") for f in forms(seed))


def test_assignment_rows_become_jobs_bound_to_their_serials(tmp_path: Path) -> None:
    rows = read_assignment("UPN,serial\nalice@example.org,60712345\nbob@example.org,\n")
    assert rows == (Assignment("alice@example.org", "60712345"), Assignment("bob@example.org"))
    q = JobQueue(tmp_path / "queue.sqlite3")
    jobs = q.add_generated("b2", new_jobs(GenerateRequest(assign=rows, issuer="ACME"), "b2")).queued
    assert [(j.label(), j.serial, j.upn, j.batch) for j in jobs] == [
        ("ACME:alice@example.org", "60712345", "alice@example.org", "b2"),
        ("ACME:bob@example.org", "", "bob@example.org", "b2"),
    ]
    assert len(q.secret(jobs[0].id)) == 20
    assert jobs[0].as_dict()["batch"] == "b2" and "handover" not in jobs[0].as_dict()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("user\nalice\n", "header row naming a `upn`"),
        ("upn,serial\n,123\n", "line 2: the upn is empty"),
        ("upn,serial\na b,1\n", "line 2: upn 'a b' is not a user name"),
        ("upn,serial\na,1\nb,1\n", "one serial twice"),
    ],
)
def test_a_bad_assignment_names_the_line_and_field(text: str, words: str) -> None:
    with pytest.raises(GenerateProblem, match=words):
        new_jobs(GenerateRequest(assign=read_assignment(text)), "b")


def test_a_bad_request_says_what_to_give() -> None:
    with pytest.raises(GenerateProblem, match="30 or 60"):
        new_jobs(GenerateRequest(count=1, period=45), "b")
    with pytest.raises(GenerateProblem, match="sha1 or sha256"):
        new_jobs(GenerateRequest(count=1, algorithm="md5"), "b")
    with pytest.raises(GenerateProblem, match="1 to 1000"):
        new_jobs(GenerateRequest(count=5000), "b")


def test_on_a_shared_store_another_station_exports_what_one_burned_and_a_dump_holds_none(
    pg_server: PgServer, pg_url: str
) -> None:
    db = PostgresDatabase(pg_url)
    schema.migrate(db, schema.PARTS)
    db.close()
    a = JobQueue(PostgresDatabase(pg_url), station="A", box=SecretBox(KEY))
    b = JobQueue(PostgresDatabase(pg_url), station="B", box=SecretBox(KEY))
    jobs = a.add_generated("b1", new_jobs(GenerateRequest(count=2), "b1")).queued
    seeds = [a.secret(j.id).reveal() for j in jobs]
    for job in jobs:
        b.start_burn(job.id, f"8659632000000{job.id}")
        b.burned(job.id, f"8659632000000{job.id}", model="C302-i")
    assert [r.seed.reveal() for _, r in held_records(a, "b1")] == seeds  # A opens B's burns
    dump = pg_server.dump(pg_url)
    for seed in seeds:
        assert not any(f in dump for f in forms(seed))
    a.mark_exported([j.id for j in jobs])
    assert b.erase_exported("b1") == 2 and held_records(a) == []
    a.close()
    b.close()
