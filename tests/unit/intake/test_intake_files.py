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
    UnsafeFolder,
    fit_name,
    unique_name,
)
from tokenstation.daemon.intake.ingest import NotTrusted, judge_bytes, open_and_read
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


def _as_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: folders and files of another user")


def _folder(path: Path, mode: int, uid: int = -1) -> Path:
    path.mkdir()
    os.chown(path, uid, -1)
    os.chmod(path, mode)
    return path


NOBODY = 65534


@pytest.mark.parametrize(
    ("mode", "owner", "writers"),
    [
        (0o700, "me", ""),
        (0o770, "me", "the group root"),  # the daemon's own: a group may share it
        (0o1770, "nobody", "nobody and the group root (sticky)"),
        (0o1777, "nobody", "everyone (sticky)"),  # what /tmp is
        (0o700, "nobody", "nobody"),
    ],
)
def test_a_shared_drop_folder_is_taken_when_sticky_or_ours_and_says_who_may_write(
    tmp_path: Path, mode: int, owner: str, writers: str
) -> None:
    _as_root()
    drop = _folder(tmp_path / "drop", mode, NOBODY if owner == "nobody" else -1)
    files = IntakeFiles(drop)
    files.prepare()
    assert files.writers == writers
    assert stat.S_IMODE(drop.stat().st_mode) == mode  # never re-moded
    assert sorted(os.listdir(drop)) == [".taking", "archive", "failed"]


@pytest.mark.parametrize("mode", [0o770, 0o777])
def test_a_drop_folder_others_may_write_in_is_refused_unless_sticky_or_ours(
    tmp_path: Path, mode: int
) -> None:
    _as_root()
    drop = _folder(tmp_path / "drop", mode, NOBODY)
    with pytest.raises(UnsafeFolder) as refused:
        IntakeFiles(drop).prepare()
    assert "make it sticky (chmod +t) or owned by root" in str(refused.value)
    assert os.listdir(drop) == [] and stat.S_IMODE(drop.stat().st_mode) == mode


def test_a_drop_folder_named_by_a_link_or_a_subfolder_others_may_write_is_refused(
    tmp_path: Path,
) -> None:
    real = _folder(tmp_path / "real", 0o700)
    os.symlink(real, tmp_path / "link")
    with pytest.raises(UnsafeFolder, match="is a symbolic link: name the folder it points to"):
        IntakeFiles(tmp_path / "link").prepare()
    _folder(real / "failed", 0o777)
    with pytest.raises(UnsafeFolder, match="failed is a folder everyone may write in"):
        IntakeFiles(real).prepare()
    assert stat.S_IMODE((real / "failed").stat().st_mode) == 0o777


def test_a_subfolder_replaced_while_running_is_refused_and_made_again_once_gone(
    tmp_path: Path,
) -> None:
    files = files_in(tmp_path)
    elsewhere = _folder(tmp_path / "elsewhere", 0o700)
    os.rename(files.failed, tmp_path / "hidden")
    os.symlink(elsewhere, files.failed)
    claimed = files.claims / "x.txt"
    claimed.write_text("hello")
    refusal = Refusal("x.txt", "text", "rejected", "why", "Do x.")
    assert files.refuse(claimed, refusal) is None
    assert claimed.read_text() == "hello" and os.listdir(elsewhere) == []
    assert "failed is a symbolic link" in files.trouble
    files.failed.unlink()
    assert files.refuse(claimed, refusal) == files.failed / "x.txt"
    assert files.trouble == ""
    # .taking itself replaced: nothing is claimed, and no descriptor is left open.
    os.rename(files.work, tmp_path / "old-taking")
    os.symlink(elsewhere, files.work)
    (files.folder / "y.txt").write_text("hello")
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(3):
        with pytest.raises(UnsafeFolder, match=r"\.taking is a symbolic link"):
            files.claim(files.folder / "y.txt")
    assert len(os.listdir("/proc/self/fd")) == before
    assert (files.folder / "y.txt").exists() and os.listdir(elsewhere) == []
    assert files.trouble.count(".taking is a symbolic link") == 1
    files.work.unlink()
    # The claim folder inside it replaced (only our own user could): the same.
    files_in(tmp_path)
    os.rename(files.claims, tmp_path / "old-claim")
    os.symlink(elsewhere, files.claims)
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(UnsafeFolder, match="claim is a symbolic link"):
        files.claim(files.folder / "y.txt")
    assert len(os.listdir("/proc/self/fd")) == before
    files.claims.unlink()
    assert files.claim(files.folder / "y.txt") == files.claims / "y.txt"
    assert files.trouble == ""


def test_a_hard_link_or_another_users_file_is_refused_unread_and_never_remoded(
    tmp_path: Path,
) -> None:
    files = files_in(tmp_path)
    target = tmp_path / "target.txt"
    target.write_text(URI)
    os.chmod(target, 0o640)
    os.link(target, files.claims / "linked.txt")
    with pytest.raises(NotTrusted, match="hard link"):
        files.open_claimed(files.claims / "linked.txt", 1000)
    refusal = Refusal("linked.txt", "untrusted-file", "error", "a hard link", "Do x.")
    kept = files.refuse(files.claims / "linked.txt", refusal)
    assert kept is not None and kept.samefile(target)
    assert target.read_text() == URI and stat.S_IMODE(target.stat().st_mode) == 0o640
    if os.geteuid() == 0:
        theirs = files.claims / "theirs.txt"
        theirs.write_text(URI)
        os.chown(theirs, NOBODY, -1)
        with pytest.raises(NotTrusted, match="belongs to nobody"):
            files.open_claimed(theirs, 1000)
        allowed = IntakeFiles(files.folder, owners=[NOBODY])
        assert allowed.open_claimed(theirs, 1000).data == URI.encode()
