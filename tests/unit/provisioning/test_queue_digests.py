"""No bare digest of a seed in the local queue: duplicates are recognised by an HMAC with
the queue's own key, and digests an older queue kept bare are re-keyed (or dropped where
the seed is gone) when it opens."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from tokenstation.daemon.intake.otpauth import OtpAccount
from tokenstation.daemon.provisioning.queue import JobQueue, NewJob
from tokenstation.daemon.token.secret import Secret

C302 = "86596320000001"


def account(n: int) -> OtpAccount:
    return OtpAccount(
        "totp", "ACME", f"user{n}", Secret(f"secret-number-{n:04d}".encode()), "SHA1", 6, 30
    )


def bare_digests(seed: bytes) -> set[bytes]:
    """Every unkeyed digest of ``seed`` as it could stand in a file: raw and hex."""
    out = set()
    for algorithm in ("sha256", "sha1"):
        d = hashlib.new(algorithm, seed)
        out |= {d.digest(), d.hexdigest().encode(), d.hexdigest().upper().encode()}
    return out


def files_of(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.iterdir() if p.is_file())


def test_no_bare_digest_of_a_seed_while_queued_or_after_the_burn(tmp_path: Path) -> None:
    q = JobQueue(tmp_path / "queue.sqlite3")
    (a, _b) = q.take("f1", "a.txt", "ok", [NewJob(account(1)), NewJob(account(2))]).queued
    stored = files_of(tmp_path)
    for n in (1, 2):
        assert not any(d in stored for d in bare_digests(f"secret-number-{n:04d}".encode()))
    again = q.take("f2", "b.txt", "ok", [NewJob(account(1))])
    assert not again.queued and again.duplicates  # the keyed digest still recognises it
    q.start_burn(a.id, C302)
    q.burned(a.id, C302)
    q.close()
    stored = files_of(tmp_path)
    assert not any(d in stored for d in bare_digests(b"secret-number-0001"))


def test_an_older_queue_is_rekeyed_when_it_opens(tmp_path: Path) -> None:
    path = tmp_path / "queue.sqlite3"
    q = JobQueue(path)
    (a, b) = q.take("f1", "a.txt", "ok", [NewJob(account(1)), NewJob(account(2))]).queued
    q.start_burn(b.id, C302)
    q.burned(b.id, C302)
    q.close()
    # As a queue from before schema 6 kept them: bare SHA-256, marked not keyed.
    db = sqlite3.connect(path)
    for job_id, n in ((a.id, 1), (b.id, 2)):
        bare = hashlib.sha256(f"secret-number-{n:04d}".encode()).hexdigest()
        db.execute("UPDATE jobs SET secret_hash = ?, digest_keyed = 0 WHERE id = ?", (bare, job_id))
    db.commit()
    db.close()
    q = JobQueue(path)
    assert not q.take("f2", "b.txt", "ok", [NewJob(account(1))]).queued  # still known
    q.close()
    stored = files_of(tmp_path)
    for n in (1, 2):
        assert not any(d in stored for d in bare_digests(f"secret-number-{n:04d}".encode()))
    rows = dict(sqlite3.connect(path).execute("SELECT id, secret_hash FROM jobs").fetchall())
    assert rows[b.id] == ""  # the burned seed is gone: nothing left to recognise it by
