"""Hostile files on a real file system: odd names, long names, replaced files, crashes
between the steps of taking a file, formula cells, secrets left in the queue's WAL."""

from __future__ import annotations

import base64
import csv
import io
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from tokenstation.daemon.intake.dropfolder import DropFolder
from tokenstation.daemon.intake.files import (
    FAILED_NAME_MAX,
    IntakeFiles,
    Refusal,
    fit_name,
    unique_name,
)
from tokenstation.daemon.intake.ingest import judge_bytes, open_and_read
from tokenstation.daemon.intake.otpauth import OtpAccount
from tokenstation.daemon.intake.payload import Limits
from tokenstation.daemon.provisioning.csvsafe import SafeWriter, safe_cell
from tokenstation.daemon.provisioning.queue import JobQueue, NewJob
from tokenstation.daemon.safetext import shown_name
from tokenstation.daemon.token.secret import Secret

URI = "otpauth://totp/ACME:alice?secret=JBSWY3DPEHPK3PXP&issuer=ACME"


def files_in(tmp_path: Path) -> IntakeFiles:
    files = IntakeFiles(tmp_path / "drop")
    files.prepare()
    return files


def test_names_that_are_not_utf8_are_shown_escaped() -> None:
    name = os.fsdecode(b"bad\xff.txt")
    assert shown_name(name) == "bad\\xff.txt"
    assert shown_name("line\nbreak\x1b[31m.png") == "line\\nbreak\\x1b[31m.png"
    assert shown_name("Zoë.png") == "Zoë.png"


def test_long_names_are_bounded_and_stay_apart(tmp_path: Path) -> None:
    long = "é" * 120 + ".png"  # 244 bytes
    assert len(os.fsencode(fit_name(long, 200))) <= 200
    assert fit_name(long, 200).endswith(".png")
    assert fit_name(long, 200) != fit_name("é" * 119 + "x.png", 200)  # a hash keeps them apart
    (tmp_path / fit_name(long, FAILED_NAME_MAX)).write_text("x")
    again = unique_name(tmp_path, long, FAILED_NAME_MAX)
    assert len(os.fsencode(again.name)) <= FAILED_NAME_MAX and not again.exists()
    raw = os.fsdecode(b"\xff" * 250 + b".txt")
    assert len(os.fsencode(fit_name(raw, 244))) <= 244


def test_a_refused_long_name_gets_its_reason_file_and_mode_0600(tmp_path: Path) -> None:
    files = files_in(tmp_path)
    name = "a" * 246 + ".txt"  # the name from the report: NAME.reason.txt > 255 bytes
    claimed = files.claims / name
    claimed.write_text("hello")
    os.chmod(claimed, 0o644)
    opened = open_and_read(claimed, 1000, for_erasing=True)
    refusal = Refusal(shown_name(name), "text", "rejected", "text of 5 characters", "Do x.")
    target = files.refuse(claimed, refusal, opened)
    opened.close()
    assert target is not None and target.read_text() == "hello"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    reason = target.with_name(target.name + ".reason.txt")
    assert len(os.fsencode(reason.name)) <= 255
    text = reason.read_text()
    assert f"File:        {name}" in text and "Kept as:" in text and "What to do:  Do x." in text
    assert stat.S_IMODE(reason.stat().st_mode) == 0o600


def test_refusing_never_raises_and_never_reuses_a_name(tmp_path: Path) -> None:
    files = files_in(tmp_path)
    claimed = files.claims / "x.txt"
    claimed.write_text("hello")
    os.symlink("/nonexistent", files.failed / "x.txt")  # a dangling link holds the name
    target = files.refuse(claimed, Refusal("x.txt", "text", "rejected", "why", "Do x."))
    assert target == files.failed / "x.1.txt" and target.read_text() == "hello"
    assert (files.failed / "x.1.txt.reason.txt").exists()
    # failed/ unusable (not a folder): logged, no exception, the file stays claimed.
    again = files.claims / "y.txt"
    again.write_text("hello")
    os.rename(files.failed, tmp_path / "old-failed")
    files.failed.write_text("not a folder")
    assert files.refuse(again, Refusal("y.txt", "text", "rejected", "why", "Do x.")) is None
    assert again.exists()


def hard_link_of(path: Path, where: Path) -> Path:
    """Another name for the same inode: what an attacker or a backup would still see."""
    os.link(path, where)
    return where


def test_erase_zeroes_the_inode_that_was_read_and_spares_a_replacement(tmp_path: Path) -> None:
    files = files_in(tmp_path)
    claimed = files.claims / "a.txt"
    claimed.write_text(URI)
    witness = hard_link_of(claimed, tmp_path / "witness")
    opened = open_and_read(claimed, 1000, for_erasing=True)
    files.erase(opened)
    opened.close()
    assert witness.read_bytes() == b"\0" * len(URI)
    assert not os.listdir(files.claims) and not os.listdir(files.erasing)

    # Replaced after the read: the replacement is never zeroed nor deleted unseen.
    claimed.write_text(URI)
    witness2 = hard_link_of(claimed, tmp_path / "witness2")
    opened = open_and_read(claimed, 1000, for_erasing=True)
    other = tmp_path / "other.txt"
    other.write_text("the replacement")
    os.rename(other, claimed)
    files.erase(opened)
    opened.close()
    assert witness2.read_bytes() == b"\0" * len(URI)  # the inode read: zeroed all the same
    [kept] = os.listdir(files.claims)  # back in the claim folder: judged as a new file
    assert (files.claims / kept).read_text() == "the replacement"


def test_a_crash_at_any_step_of_taking_is_finished_at_start(tmp_path: Path) -> None:
    files = files_in(tmp_path)
    # Crashed between zeroing and unlinking: finished, never judged (never refused).
    zeroed = files.erasing / "taken.txt"
    zeroed.write_bytes(b"\0" * 79)
    # Crashed half-way through zeroing: the rest is zeroed.
    half = files.erasing / "half.txt"
    half.write_bytes(b"\0" * 10 + URI.encode())
    witness = hard_link_of(half, tmp_path / "w")
    # Claimed but not yet judged (or judged, not yet moved): judged again.
    (files.claims / "claimed.txt").write_text(URI)
    again = files.recover()
    assert again == [files.claims / "claimed.txt"]
    assert not os.listdir(files.erasing)
    assert witness.read_bytes() == b"\0" * (10 + len(URI))


def test_csv_cells_that_spreadsheets_would_run_are_neutralised() -> None:
    for bad in ("=cmd|' /C calc'!A0", "+1+1", "-2", "@SUM(A1)", "\tx", "\rx"):
        assert safe_cell(bad) == "'" + bad
    assert safe_cell("Bitbucket") == "Bitbucket" and safe_cell(42) == "42"
    out = io.StringIO()
    SafeWriter(out).writerow(['=HYPERLINK("x")', "alice"])
    assert next(csv.reader(io.StringIO(out.getvalue()))) == ['\'=HYPERLINK("x")', "alice"]


def test_limits_refuse_a_file_whole_and_name_the_limit() -> None:
    small = Limits(max_jobs=3, max_text_bytes=10_000)
    rows = "".join(
        f"8659632000000{i},{base64.b32encode(f'secret-number-{i:04d}'.encode()).decode()}\n"
        for i in range(4)
    )
    v = judge_bytes("batch.csv", rows.encode(), limits=small)
    assert v.verdict == "rejected" and not v.candidates
    assert "max_jobs_per_file" in v.reason and "3" in v.reason
    assert judge_bytes("batch.csv", rows.encode(), limits=Limits(max_jobs=4)).verdict == "ok"
    lines = "\n".join([URI.replace("alice", f"u{i}") for i in range(4)])
    v = judge_bytes("many.txt", lines.encode(), limits=small)
    assert v.verdict == "rejected" and "max_jobs_per_file" in v.reason
    big = (URI + "\n").encode() * 200
    v = judge_bytes("big.txt", big, limits=small)
    assert v.verdict == "rejected" and "max_text_size" in v.reason


def test_csv_reasons_never_echo_a_cell() -> None:
    secretish = "JBSWY3DPEHPK3PXPJBSWY3DP"
    v = judge_bytes("swapped.csv", f"{secretish},86596320000001\n".encode())
    assert v.verdict == "rejected" and secretish not in v.reason


def account(n: int) -> OtpAccount:
    return OtpAccount("totp", "ACME", f"user{n}", Secret(f"wal-secret-number-{n:04d}".encode()))


def every_file(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_no_secret_stays_in_any_queue_file_once_burned_or_removed(tmp_path: Path) -> None:
    q = JobQueue(tmp_path / "queue.sqlite3")
    name = os.fsdecode(b"bad\xff.png")
    jobs = [NewJob(account(i), "", f"{name} (QR)") for i in (1, 2, 3)]
    a, b, _c = q.take("sha", name, "ok", jobs).queued  # a name SQLite cannot take as is
    assert a.source == "bad\\xff.png (QR)"
    q.remove(a.id)
    q.start_burn(b.id, "86596320000001")
    q.burned(b.id, "86596320000001")
    # While the queue stays open: the main file, -wal and -shm hold neither secret.
    contents = every_file(tmp_path)
    assert {p.name for p in contents} >= {"queue.sqlite3"}
    for n in (1, 2):
        raw = f"wal-secret-number-{n:04d}".encode()
        forms = [raw, base64.b32encode(raw), base64.b32encode(raw).rstrip(b"=")]
        leaks = [p.name for p, data in contents.items() for f in forms if f in data]
        assert not leaks, f"secret {n} left in {leaks}"
    assert any(b"wal-secret-number-0003" in data for data in contents.values())  # still held
    assert [j.id for j in q.jobs(offset=1, limit=1)] == [b.id] and q.total() == 3
    q.close()


def test_a_failing_consumer_is_retried_with_a_growing_delay_not_in_a_loop(
    tmp_path: Path,
) -> None:
    calls: list[float] = []

    def ready(p: Path) -> None:
        calls.append(time.monotonic())
        p.read_bytes()  # the consumer's own read raises no new event
        raise UnicodeEncodeError("utf-8", "x", 0, 1, "surrogates not allowed")

    folder = DropFolder(tmp_path, ready, stability_s=0.1)
    (tmp_path / os.fsdecode(b"bad\xff.txt")).write_text(URI)
    folder.start()
    try:
        time.sleep(3.6)
    finally:
        folder.stop()
    assert 2 <= len(calls) <= 3, calls  # at 0, +1 s, +3 s: not hundreds
    assert os.listdir(tmp_path / ".taking" / "claim") == [os.fsdecode(b"bad\xff.txt")]


def test_files_left_claimed_by_a_crash_are_handed_over_first(tmp_path: Path) -> None:
    files = files_in(tmp_path)
    (files.claims / "left.txt").write_text(URI)
    got: list[str] = []
    done = threading.Event()

    def ready(p: Path) -> None:
        got.append(p.name)
        done.set()

    folder = DropFolder(files.folder, ready, stability_s=0.1)
    folder.start()
    try:
        assert done.wait(3)
    finally:
        folder.stop()
    assert got == ["left.txt"]


@pytest.mark.parametrize("after", ["delete", "archive"])
def test_taken_files_are_erased_or_kept_0600(tmp_path: Path, after: str) -> None:
    files = files_in(tmp_path)
    claimed = files.claims / "a.txt"
    claimed.write_text(URI)
    os.chmod(claimed, 0o644)
    opened = open_and_read(claimed, 1000, for_erasing=True)
    if after == "archive":
        kept = files.keep(opened)
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600 and kept.read_text() == URI
    else:
        files.erase(opened)
        assert not list(files.folder.rglob("a.txt"))
    opened.close()


def test_a_subfolder_planted_as_a_link_stops_the_watch_not_the_daemon(tmp_path: Path) -> None:
    drop, elsewhere = tmp_path / "drop", tmp_path / "elsewhere"
    drop.mkdir()
    elsewhere.mkdir()
    os.symlink(elsewhere, drop / ".taking")  # planted by someone who may drop files
    (drop / "a.txt").write_text(URI)
    got: list[Path] = []
    folder = DropFolder(drop, got.append, stability_s=0.1)
    folder.start()
    try:
        time.sleep(0.5)
    finally:
        folder.stop()
    assert folder.mode.startswith("not watching: ") and "a symbolic link" in folder.mode
    assert "remove it" in folder.mode
    assert got == [] and os.listdir(elsewhere) == [] and (drop / "a.txt").exists()
