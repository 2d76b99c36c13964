"""Drop-a-QR provisioning on the real stack: watched folder, queue, burn onto the simulator."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import segno

from tokenstation.daemon.bus.client import DaemonError

from conftest import BusWatcher, DaemonProc, SimToken, wait_until

pytestmark = pytest.mark.pcsc

C302 = "86596320000001"
C302B = "86596320000002"
P2 = "86596220000007"
URI = "otpauth://totp/Bitbucket:alice?secret=JBSWY3DPEHPK3PXP&issuer=Bitbucket"
FINGERPRINT = "9b5f5e29"
Start = Callable[..., tuple[DaemonProc, BusWatcher]]
Cli = Callable[..., subprocess.CompletedProcess[str]]


def config(folder: Path, mode: str = "attended", extra: str = "") -> str:
    return (
        f'mode = "{mode}"\n[drop]\nfolder = "{folder}"\nstability_delay = 0.3\n'
        f'[clock]\ntrust = "assume-synchronised"\n{extra}'
    )


def drop_qr(folder: Path, name: str, text: str) -> Path:
    """Write like a browser would: a .part temporary, renamed when complete."""
    tmp = folder / f"{name}.part"
    segno.make_qr(text, error="m").save(tmp, scale=4, kind="png")
    final = folder / name
    os.rename(tmp, final)
    return final


def queue_db(home: Path) -> sqlite3.Connection:
    return sqlite3.connect(home / "data" / "tokenstation" / "queue.sqlite3")


def test_dropped_qr_is_queued_offered_and_burned_with_the_code_to_expect(
    start_daemon: Start,
    simulator: Callable[..., SimToken],
    cli_bus: Cli,
    tmp_path: Path,
    station_env: dict[str, str],
) -> None:
    folder = tmp_path / "drop"
    _daemon, bus = start_daemon(config=config(folder))
    wait_until(folder.exists, 5.0, "drop folder created")
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    qr = drop_qr(folder, "bitbucket.png", URI)
    taken = bus.expect("FileTaken", file="bitbucket.png")
    assert taken["verdict"] == "ok" and taken["kind"] == "otpauth-totp"
    [job] = taken["queued"]
    assert job["label"] == "Bitbucket:alice" and job["secret_fingerprint"] == FINGERPRINT
    wait_until(lambda: not qr.exists(), 3.0, "the image deleted after ingestion")

    listed = json.loads(cli_bus("queue", "list", "--json").stdout)["jobs"]
    assert [(j["id"], j["state"]) for j in listed] == [(job["id"], "queued")]

    sim = simulator("--serial", C302)
    offer = bus.expect("BurnOffered", serial=C302)
    assert offer["job"]["id"] == job["id"]
    assert offer["question"] == f"Burn Bitbucket:alice onto token {C302}?"
    assert sim.fresh_state()["seed_writes"] == 0  # attended: nothing without a yes

    done = bus.run(bus.client.burn_job(job["id"], C302))
    assert done["job"]["state"] == "burned" and done["power_cycle_required"] is True
    state = sim.fresh_state()
    assert state["seed_fingerprint"] == FINGERPRINT
    if state["host_time"] < done["expected_code_valid_until"]:  # same time step
        assert state["code_after_power_cycle"] == done["expected_code"]
    sim.power_cycle()
    shown = sim.fresh_state()
    # What the operator checks: the code on the display is the account's code now.
    from tokenstation.daemon.intake.otpauth import parse_otpauth
    from tokenstation.daemon.provisioning.otpcode import expected_code
    from tokenstation.daemon.token.settings import TokenSettings

    now_code, _ = expected_code(parse_otpauth(URI).secret, TokenSettings(), shown["host_time"])
    assert shown["code"] == now_code

    # The secret is gone from the queue; the registry and the provisioning log remember.
    with queue_db(tmp_path / "home") as db:
        assert db.execute("SELECT secret FROM jobs").fetchall() == [(None,)]
    log = tmp_path / "home" / "data" / "tokenstation" / "provisioning-log.csv"
    rows = list(csv.DictReader(log.open()))
    assert rows[0]["serial"] == C302 and rows[0]["secret_fingerprint"] == FINGERPRINT
    assert "JBSWY3DPEHPK3PXP" not in log.read_text()
    tokens = json.loads(cli_bus("tokens", C302, "--json").stdout)["tokens"][0]
    assert tokens["provisioned"] is True
    assert tokens["last_operation"]["kind"] == "burn"


def test_refused_files_move_to_failed_with_the_reason(start_daemon: Start, tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    daemon, bus = start_daemon(config=config(folder))
    wait_until(folder.exists, 5.0)
    drop_qr(folder, "link.png", "https://example.com/enrol")
    os.mkfifo(folder / "pipe.png")
    outside = tmp_path / "secret.txt"
    outside.write_text(URI)
    (folder / "sneaky.txt").symlink_to(outside)
    (folder / "notes.doc").write_text("hello")
    for name, verdict in [
        ("link.png", "rejected"),
        ("pipe.png", "error"),
        ("sneaky.txt", "error"),
        ("notes.doc", "rejected"),
    ]:
        event = bus.expect("FileTaken", file=name)
        assert event["verdict"] == verdict, event
        reason = (folder / "failed" / f"{name}.reason.txt").read_text()
        assert event["reason"] in reason and "What to do" in reason
        assert (folder / "failed" / name).is_symlink() or (folder / "failed" / name).exists()
    assert "a symbolic link" in (folder / "failed" / "sneaky.txt.reason.txt").read_text()
    assert outside.read_text() == URI  # the link was moved, its target never touched
    assert sorted(p.name for p in folder.iterdir()) == [".taking", "archive", "failed"]
    assert not list((folder / ".taking").rglob("*.*"))  # nothing left half-taken
    for p in (folder / "failed").iterdir():
        if not p.is_symlink() and p.is_file():
            assert oct(p.stat().st_mode & 0o777) == "0o600", p.name
    assert daemon.proc.poll() is None


def test_temporary_names_wait_and_duplicates_are_not_queued_twice(
    start_daemon: Start, tmp_path: Path
) -> None:
    folder = tmp_path / "drop"
    _daemon, bus = start_daemon(config=config(folder))
    wait_until(folder.exists, 5.0)
    part = folder / "alice.txt.crdownload"
    part.write_text(URI)
    time.sleep(1.0)
    assert part.exists() and bus.count("FileTaken") == 0
    part.rename(folder / "alice.txt")
    first = bus.expect("FileTaken", file="alice.txt")
    assert len(first["queued"]) == 1
    drop_qr(folder, "alice-again.png", URI)  # same secret, other file
    again = bus.expect("FileTaken", file="alice-again.png")
    holder = f"job {first['queued'][0]['id']}, Bitbucket:alice (queued)"
    assert again["queued"] == [] and again["duplicates"] == [holder]
    assert f"same secret is already held by {holder}" in again["reason"]
    jobs = bus.run(bus.client.jobs())
    assert len(jobs) == 1


def test_station_mode_burns_bound_and_fresh_tokens_never_a_provisioned_one(
    start_daemon: Start, simulator: Callable[..., SimToken], tmp_path: Path
) -> None:
    folder = tmp_path / "drop"
    _daemon, bus = start_daemon(config=config(folder, mode="station"))
    wait_until(folder.exists, 5.0)
    (folder / f"{C302}.txt").write_text(URI)  # bound to C302 by its name
    bus.expect("FileTaken", file=f"{C302}.txt")
    sim = simulator("--serial", C302)
    done = bus.expect("BurnDone", serial=C302)
    assert done["origin"] == "station"
    assert sim.fresh_state()["seed_fingerprint"] == FINGERPRINT

    # An unbound job: the provisioned C302 must not get it, a fresh token must.
    (folder / "bob.txt").write_text(
        "otpauth://totp/ACME:bob?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=ACME"
    )
    bus.expect("FileTaken", file="bob.txt")
    sim.power_cycle()
    bus.expect("TokenMeasured", serial=C302)
    time.sleep(1.0)
    assert bus.count("BurnDone") == 1
    assert sim.fresh_state()["seed_writes"] == 1
    sim.stop()
    fresh = simulator("--serial", C302B)
    done = bus.expect("BurnDone", serial=C302B)
    assert done["job"]["label"] == "ACME:bob"
    assert fresh.fresh_state()["seed_writes"] == 1


def test_token_removed_mid_burn_requeues_the_job_never_marks_it_burned(
    start_daemon: Start, simulator: Callable[..., SimToken], tmp_path: Path
) -> None:
    folder = tmp_path / "drop"
    _daemon, bus = start_daemon(config=config(folder))
    wait_until(folder.exists, 5.0)
    (folder / "alice.txt").write_text(URI)
    [job] = bus.expect("FileTaken", file="alice.txt")["queued"]
    sim = simulator("--serial", C302, "--delay", "2.0", "--delay-ins", "C5")
    bus.expect("BurnOffered", serial=C302)
    outcome: dict[str, object] = {}

    def burn() -> None:
        try:
            outcome["done"] = bus.run(bus.client.burn_job(job["id"], C302))
        except DaemonError as exc:
            outcome["error"] = exc

    t = threading.Thread(target=burn)
    t.start()
    time.sleep(1.6)  # WRITE CONFIG waits <= 1 s for the second; WRITE SEED is now held
    sim.proc.send_signal(signal.SIGUSR2)
    t.join(15)
    assert "error" in outcome, outcome
    failed = bus.expect("BurnFailed", serial=C302)
    assert failed["outcome"] == "requeued"
    assert "WRITE SEED" in failed["message"]
    [after] = bus.run(bus.client.jobs())
    assert after["state"] == "queued" and "WRITE SEED" in after["reason"]
    assert bus.count("BurnDone") == 0


def test_a_huge_bitmap_is_refused_and_does_not_hold_up_the_code_behind_it(
    start_daemon: Start, cli_bus: Cli, tmp_path: Path
) -> None:
    from PIL import Image

    folder = tmp_path / "drop"
    daemon, bus = start_daemon(config=config(folder))
    wait_until(folder.exists, 5.0)
    staged = tmp_path / "blank.png"
    Image.new("1", (9400, 9400), 1).save(staged, optimize=True)  # 22 KB, 88 megapixels
    os.rename(staged, folder / "blank.png")
    drop_qr(folder, "alice.png", URI)
    big = bus.expect("FileTaken", file="blank.png")
    assert big["verdict"] == "error" and "over the 40 megapixels limit" in big["reason"], big
    assert "crop it" in (folder / "failed" / "blank.png.reason.txt").read_text()
    taken = bus.expect("FileTaken", file="alice.png")
    assert taken["verdict"] == "ok" and len(taken["queued"]) == 1, taken
    status = json.loads(cli_bus("status", "--json").stdout)
    assert "zxing-cpp" in status["qr_decoders"] and "worker processes" in status["qr_decoders"]
    assert "QR:" in cli_bus("status").stdout
    assert daemon.proc.poll() is None
