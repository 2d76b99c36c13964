"""Hostile files against the real daemon (private pcscd, vpcd, simulator, dbus-daemon).

Each test is one case from the report of issue 12: a name that is not UTF-8, a name so
long its reason file would not fit, a file replaced while judged, a crash between the
steps of taking a file, formula cells in the provisioning log, a seed left in the
queue's WAL, files over the limits, and the permissions of kept files.
"""

from __future__ import annotations

import base64
import csv
import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
import segno

from conftest import TEST_SECRETS, BusWatcher, DaemonProc, SimToken, wait_until

pytestmark = pytest.mark.pcsc

C302 = "86596320000001"
Start = Callable[..., tuple[DaemonProc, BusWatcher]]
Cli = Callable[..., subprocess.CompletedProcess[str]]


def secret_b32(i: int) -> str:
    return base64.b32encode(TEST_SECRETS[2 + i]).decode().rstrip("=")


def uri(i: int, issuer: str = "Hostile", account: str = "") -> str:
    label = quote(account or f"user{i}")
    return f"otpauth://totp/{label}?secret={secret_b32(i)}&issuer={quote(issuer)}"


def config(folder: Path, extra: str = "", mode: str = "attended") -> str:
    return (
        f'mode = "{mode}"\n[drop]\nfolder = "{folder}"\nstability_delay = 0.2\n{extra}'
        '[clock]\ntrust = "assume-synchronised"\n'
    )


def drop_daemon(
    start_daemon: Start, tmp_path: Path, extra: str = ""
) -> tuple[Path, DaemonProc, BusWatcher]:
    """A daemon watching ``tmp_path/drop`` (config() with ``extra``), once it made the folder."""
    folder = tmp_path / "drop"
    daemon, bus = start_daemon(config=config(folder, extra))
    wait_until(folder.exists, 5.0)
    return folder, daemon, bus


def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "home" / "data" / "tokenstation"


def only_private_work_left(folder: Path) -> bool:
    work = folder / ".taking"
    return not [p for p in work.rglob("*") if not p.is_dir()]


def test_a_name_that_is_not_utf8_is_queued_or_refused_once_and_shown_escaped(
    start_daemon: Start, tmp_path: Path
) -> None:
    folder, daemon, bus = drop_daemon(start_daemon, tmp_path)
    good = os.fsencode(folder) + b"/bad\xff.txt"
    bad = os.fsencode(folder) + b"/worse\xfe\n.txt"
    with open(good, "w") as f:
        f.write(uri(0) + "\n")
    with open(bad, "w") as f:
        f.write("just some words\n")
    taken = bus.expect("FileTaken", file="bad\\xff.txt")
    assert taken["verdict"] == "ok" and len(taken["queued"]) == 1
    assert taken["queued"][0]["source"].startswith("bad\\xff.txt (")
    refused = bus.expect("FileTaken", file="worse\\xfe\\n.txt")
    assert refused["verdict"] == "rejected"
    failed = os.listdir(os.fsencode(folder / "failed"))
    assert sorted(failed) == [b"worse\xfe\n.txt", b"worse\xfe\n.txt.reason.txt"]
    reason = (folder / "failed" / os.fsdecode(b"worse\xfe\n.txt.reason.txt")).read_text()
    assert "File:        worse\\xfe\\n.txt" in reason
    wait_until(lambda: only_private_work_left(folder), 5.0, "files taken")
    assert not os.path.exists(good)
    assert bus.count("FileTaken") == 2  # each judged once: its own reads raise no events
    assert daemon.output().count("Traceback") == 0


def test_a_refused_file_with_a_246_character_name_gets_its_reason_and_its_signal(
    start_daemon: Start, tmp_path: Path
) -> None:
    folder, _daemon, bus = drop_daemon(start_daemon, tmp_path)
    name = "n" * 242 + ".txt"
    (folder / name).write_text("no code here\n")
    event = bus.expect("FileTaken", file=name)
    assert event["verdict"] == "rejected" and event["moved_to"]
    kept = Path(event["moved_to"])
    assert kept.parent == folder / "failed" and kept.exists()
    reason = kept.with_name(kept.name + ".reason.txt")
    assert len(reason.name.encode()) <= 255
    assert f"File:        {name}" in reason.read_text()
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600


def test_a_file_replaced_while_it_is_judged_is_judged_as_a_new_file(
    start_daemon: Start, tmp_path: Path
) -> None:
    folder, _daemon, bus = drop_daemon(start_daemon, tmp_path)
    first = folder / "enrol.png"
    segno.make_qr(uri(1), error="m").save(first, scale=6, kind="png")
    wait_until(lambda: not first.exists(), 5.0, "the first file claimed")
    staging = tmp_path / "replacement.txt"
    staging.write_text(uri(2) + "\n")
    os.rename(staging, folder / "enrol.png")  # a text file in the image's name: judged anew
    bus.expect("FileTaken", file="enrol.png", verdict="ok")
    second = bus.expect("FileTaken", file="enrol.png", verdict="error")
    assert "image" in second["reason"]
    kept = folder / "failed" / "enrol.png"
    assert kept.read_text() == uri(2) + "\n"  # the replacement was never zeroed unseen


def test_a_crash_between_the_steps_of_taking_a_file_never_refuses_a_taken_file(
    start_daemon: Start, tmp_path: Path
) -> None:
    folder, daemon, bus = drop_daemon(start_daemon, tmp_path)
    (folder / "taken.txt").write_text(uri(3) + "\n")
    [job] = bus.expect("FileTaken", file="taken.txt")["queued"]
    daemon.kill9()
    # The states a kill -9 can leave: zeroed but not unlinked; claimed and queued but
    # not moved on; claimed and not judged yet.
    (folder / ".taking" / "erase" / "taken.txt").write_bytes(b"\0" * 79)
    (folder / ".taking" / "claim" / "again.txt").write_text(uri(3) + "\n")
    (folder / ".taking" / "claim" / "fresh.txt").write_text(uri(4) + "\n")
    _daemon, bus = start_daemon(config=config(folder))
    fresh = bus.expect("FileTaken", file="fresh.txt")
    assert len(fresh["queued"]) == 1
    again = bus.expect("FileTaken", file="again.txt")
    assert again["queued"] == [] and again["verdict"] == "ok"
    wait_until(lambda: only_private_work_left(folder), 5.0, "leftovers finished")
    assert not list((folder / "failed").iterdir())
    jobs = bus.run(bus.client.jobs())
    assert sorted(j["id"] for j in jobs) == sorted([job["id"], fresh["queued"][0]["id"]])


def test_limits_refuse_a_big_batch_whole_naming_the_limit(
    start_daemon: Start, tmp_path: Path
) -> None:
    folder, _daemon, bus = drop_daemon(
        start_daemon, tmp_path, "max_jobs_per_file = 5\nmax_text_size = 4096\n"
    )
    rows = "".join(f"865963200001{i:02d},{secret_b32(i)}\n" for i in range(6))
    (folder / "batch.csv").write_text(rows)
    event = bus.expect("FileTaken", file="batch.csv")
    assert event["verdict"] == "rejected" and "max_jobs_per_file" in event["reason"]
    assert "5" in event["reason"] and event["queued"] == []
    (folder / "big.txt").write_text((uri(1) + "\n") * 100)
    event = bus.expect("FileTaken", file="big.txt")
    assert event["verdict"] == "rejected" and "max_text_size" in event["reason"]
    (folder / "ok.csv").write_text(rows.splitlines(keepends=True)[0])
    assert bus.expect("FileTaken", file="ok.csv")["verdict"] == "ok"
    assert len(bus.run(bus.client.jobs())) == 1  # nothing half-queued


def every_file(*roots: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for r in roots for p in r.rglob("*") if p.is_file()}


def test_no_seed_on_disk_after_burn_or_remove_and_the_log_runs_no_formula(
    start_daemon: Start,
    simulator: Callable[..., SimToken],
    cli_bus: Cli,
    tmp_path: Path,
) -> None:
    folder, _daemon, bus = drop_daemon(start_daemon, tmp_path)
    (folder / "burn.txt").write_text(uri(5, issuer="=cmd|' /C calc'!A0", account="@alice"))
    (folder / "remove.txt").write_text(uri(6) + "\n")
    [burn] = bus.expect("FileTaken", file="burn.txt")["queued"]
    [remove] = bus.expect("FileTaken", file="remove.txt")["queued"]
    assert cli_bus("queue", "remove", str(remove["id"])).returncode == 0
    simulator("--serial", C302)
    bus.expect("BurnOffered", serial=C302)
    bus.run(bus.client.burn_job(burn["id"], C302))
    # The daemon still runs: every file under its state and data folders, the queue's
    # main file, -wal and -shm included, is free of both seeds in every form.
    home = tmp_path / "home"
    files = every_file(home, folder)
    assert any(p.name == "queue.sqlite3" for p in files)
    for i in (5, 6):
        raw = TEST_SECRETS[2 + i]
        b32 = base64.b32encode(raw)
        forms = {raw, b32, b32.rstrip(b"="), b32.lower().rstrip(b"="), raw.hex().encode()}
        leaks = [str(p) for p, data in files.items() for f in forms if f in data]
        assert not leaks, f"seed {i} left in {leaks}"
    log = data_dir(tmp_path) / "provisioning-log.csv"
    [row] = list(csv.DictReader(log.open()))
    assert row["issuer"] == "'=cmd|' /C calc'!A0" and row["account"] == "'@alice"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_archived_files_are_0600(start_daemon: Start, tmp_path: Path) -> None:
    folder, _daemon, bus = drop_daemon(start_daemon, tmp_path, 'after = "archive"\n')
    path = folder / "keep.txt"
    path.write_text(uri(7) + "\n")
    os.chmod(path, 0o644)
    bus.expect("FileTaken", file="keep.txt")
    kept = folder / "archive" / "keep.txt"
    wait_until(kept.exists, 3.0)
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
