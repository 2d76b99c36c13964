"""The burn queue, the burn policy and the drop folder's stability rule (real SQLite,
real watchdog on a temporary folder)."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
import time
from pathlib import Path

import pytest

from tokenstation.daemon.intake.dropfolder import DropFolder, ignored_name
from tokenstation.daemon.intake.otpauth import OtpAccount
from tokenstation.daemon.provisioning.choice import choose_job
from tokenstation.daemon.provisioning.queue import JobQueue, NewJob
from tokenstation.daemon.token.models import ModelTable
from tokenstation.daemon.token.secret import Secret

C302 = "86596320000001"
TABLE = ModelTable()


def account(n: int, algorithm: str = "SHA1", period: int = 30) -> OtpAccount:
    return OtpAccount(
        "totp", "ACME", f"user{n}", Secret(f"secret-number-{n:04d}".encode()), algorithm, 6, period
    )


def test_queue_keeps_secrets_only_until_burned(tmp_path: Path) -> None:
    q = JobQueue(tmp_path / "q" / "queue.sqlite3")
    assert stat.S_IMODE((tmp_path / "q").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "q" / "queue.sqlite3").stat().st_mode) == 0o600
    intake = q.take("sha-1", "a.png", "ok", [NewJob(account(1)), NewJob(account(2), C302)])
    a, b = intake.queued
    assert (a.state, b.serial) == ("queued", C302) and q.waiting() == 2
    assert q.secret(a.id) == Secret(b"secret-number-0001")
    q.start_burn(a.id, C302)
    q.burned(a.id, C302)
    with pytest.raises(KeyError):
        q.secret(a.id)
    q.remove(b.id)
    q.close()
    raw = (tmp_path / "q" / "queue.sqlite3").read_bytes()
    assert b"secret-number-0001" not in raw and b"secret-number-0002" not in raw
    db = sqlite3.connect(tmp_path / "q" / "queue.sqlite3")
    assert db.execute("SELECT state, burned_serial FROM jobs ORDER BY id").fetchall() == [
        ("burned", C302),
        ("removed", None),
    ]


def test_same_file_and_same_secret_are_not_queued_twice(tmp_path: Path) -> None:
    q = JobQueue(tmp_path / "queue.sqlite3")
    first = q.take("sha-A", "a.png", "ok", [NewJob(account(1))])
    again = q.take("sha-A", "a.png", "ok", [NewJob(account(1))])
    other_file = q.take("sha-B", "b.txt", "ok", [NewJob(account(1)), NewJob(account(3))])
    assert len(first.queued) == 1 and again.seen_before and not again.queued
    assert other_file.duplicates == ["job 1, ACME:user1 (queued)"] and len(other_file.queued) == 1
    assert q.waiting() == 2


def test_a_duplicate_names_the_job_that_holds_the_secret_not_the_account_refused(
    tmp_path: Path,
) -> None:
    q = JobQueue(tmp_path / "queue.sqlite3")
    q.take("sha-A", "a.png", "ok", [NewJob(account(1))])
    [carol] = q.take("sha-B", "b.png", "ok", [NewJob(account(2))]).queued
    renamed = OtpAccount("totp", "Zeta", "newperson", account(2).secret, "SHA1", 6, 30)
    refused = q.take("sha-C", "c.png", "ok", [NewJob(renamed)])
    assert refused.queued == []
    assert refused.duplicates == [f"job {carol.id}, ACME:user2 (queued)"]
    q.start_burn(carol.id, C302)
    q.burned(carol.id, C302)
    later = q.take("sha-D", "d.png", "ok", [NewJob(renamed)])
    assert later.duplicates == [f"job {carol.id}, ACME:user2 (burned)"]


def test_a_crash_mid_burn_leaves_a_failed_job_never_a_burned_one(tmp_path: Path) -> None:
    path = tmp_path / "queue.sqlite3"
    q = JobQueue(path)
    [job] = q.take("sha", "a.png", "ok", [NewJob(account(1))]).queued
    q.start_burn(job.id, C302)
    # the process dies here; a new one opens the queue
    q2 = JobQueue(path)
    [stuck] = q2.recover()
    assert stuck.id == job.id
    after = q2.get(job.id)
    assert after is not None and after.state == "failed" and "may or may not" in after.reason
    assert after.as_dict()["target_serial"] == C302
    q2.retry(job.id)
    assert q2.waiting() == 1 and q2.secret(job.id) == Secret(b"secret-number-0001")


def test_state_changes_are_checked(tmp_path: Path) -> None:
    q = JobQueue(tmp_path / "queue.sqlite3")
    [job] = q.take("sha", "a.png", "ok", [NewJob(account(1))]).queued
    with pytest.raises(ValueError, match="not burning"):
        q.burned(job.id, C302)
    q.start_burn(job.id, C302)
    with pytest.raises(ValueError, match="cannot be removed"):
        q.remove(job.id)
    q.back_to_queue(job.id, "token left")
    assert q.get(job.id).reason == "token left"  # type: ignore[union-attr]


def test_burn_policy() -> None:
    q_jobs = []
    model = TABLE.lookup(C302)

    def job(i: int, serial: str = "", algorithm: str = "SHA1", period: int = 30) -> object:
        from tokenstation.daemon.provisioning.queue import Job

        return Job(
            i,
            "queued",
            "fp",
            "ACME",
            f"u{i}",
            algorithm,
            period,
            serial,
            "",
            0,
            0,
            0,
            "",
            None,
            None,
        )

    free, bound, other = job(1), job(2, C302), job(3, "86596320000099")
    q_jobs = [free, bound, other]
    c = choose_job(model, C302, False, q_jobs, "station")  # type: ignore[arg-type]
    assert c.job is bound and c.automatic  # bound first
    c = choose_job(model, "86596320000050", True, q_jobs, "station")  # type: ignore[arg-type]
    assert c.job is None and "never burns over it" in c.reason
    c = choose_job(model, "86596320000050", False, q_jobs, "station")  # type: ignore[arg-type]
    assert c.job is free and c.automatic
    c = choose_job(model, "86596320000050", True, q_jobs, "attended")  # type: ignore[arg-type]
    assert c.job is free and not c.automatic and "replaces its seed" in c.reason
    unknown = TABLE.lookup("12345678")
    assert choose_job(unknown, "12345678", False, q_jobs, "station").job is None  # type: ignore[arg-type]
    sha512 = [job(4, algorithm="SHA512")]
    assert choose_job(model, C302, False, sha512, "attended").job is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "ignored"),
    [
        ("alice.png", False),
        ("86596320000001.txt", False),
        (".alice.png", True),
        ("alice.png.part", True),
        ("alice.png.crdownload", True),
        ("alice.png~", True),
        ("~$alice.txt", True),
        ("Thumbs.db", True),
        ("failed", True),
        ("alice.tmp", True),
    ],
)
def test_temporary_and_hidden_names_are_ignored(name: str, ignored: bool) -> None:
    assert ignored_name(name) is ignored


def test_a_file_is_handed_over_once_and_only_when_stable(tmp_path: Path) -> None:
    got: list[tuple[str, float]] = []
    done = threading.Event()

    def ready(p: Path) -> None:
        got.append((p.name, time.monotonic()))
        done.set()

    (tmp_path / "early.txt").write_text("present at start")
    folder = DropFolder(tmp_path, ready, stability_s=0.4)
    folder.start()
    try:
        assert done.wait(3)
        assert got[0][0] == "early.txt"
        done.clear()
        slow = tmp_path / "slow.png"
        t0 = time.monotonic()
        with slow.open("wb") as f:  # written in bursts, like a scanner or an SMB copy
            for _ in range(5):
                f.write(b"x" * 1000)
                f.flush()
                os.fsync(f.fileno())
                time.sleep(0.15)
        assert done.wait(3)
        name, at = got[-1]
        assert name == "slow.png" and at - t0 >= 0.75 + 0.4 - 0.05
        time.sleep(0.6)
        assert [n for n, _ in got].count("slow.png") == 1  # one hand-over, many events
        assert folder.mode == "native events"
        assert stat.S_IMODE((tmp_path / "failed").stat().st_mode) == 0o700
    finally:
        folder.stop()


def test_a_placement_sees_its_bound_jobs_and_the_oldest_free_ones_of_a_long_queue(
    tmp_path: Path,
) -> None:
    q = JobQueue(tmp_path / "queue.sqlite3")
    free = q.take("sha-f", "batch.csv", "ok", [NewJob(account(n)) for n in range(50)]).queued
    other = q.take("sha-o", "other.png", "ok", [NewJob(account(60), "86596320009999")]).queued
    bound = q.take("sha-b", f"{C302}.png", "ok", [NewJob(account(61), C302)]).queued
    q.start_burn(free[0].id, "86596320000077")  # no longer waiting
    page = q.claimable(C302, limit=5)
    assert [j.id for j in page] == [bound[0].id] + [j.id for j in free[1:6]]
    assert other[0].id not in {j.id for j in q.claimable("", limit=100)}  # bound elsewhere
    assert [j.id for j in q.claimable("", limit=100)] == [j.id for j in free[1:]]
    assert q.targeted("86596320000077") and not q.targeted(C302)
    q.close()
