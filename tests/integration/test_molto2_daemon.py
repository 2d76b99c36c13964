"""The daemon drives a Molto2 on the real pcscd + vpcd, with `simulate --model molto2`,
a private dbus-daemon and the drop folder: a CSV batch fills its free profiles, sync
sets every seeded profile, a seed is never written over, and a pull mid-batch resumes
at the next free profile without a profile written twice or a job lost or doubled."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_molto2 import code_at

from conftest import BusWatcher, DaemonProc, SimToken, card_present, wait_until

Start = Callable[..., tuple[DaemonProc, BusWatcher]]
Cli = Callable[..., subprocess.CompletedProcess[str]]
Sim = Callable[..., SimToken]

pytestmark = pytest.mark.pcsc

SERIAL = "58000001"


def seed(i: int) -> bytes:
    return f"molto2-daemon-{i:05d}".encode()


def b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode().rstrip("=")


def account(i: int) -> tuple[str, str, str]:
    """issuer, account, the title it must get (cut to 12 bytes of UTF-8)."""
    if i == 0:
        return "Zoë", "ééééé", "Zoë:ééé"  # the next é would cross 12 bytes
    return f"Service{i:02d}", "alice", f"Service{i:02d}:al"


def config(folder: Path) -> str:
    return (
        f'mode = "station"\n[drop]\nfolder = "{folder}"\nstability_delay = 0.2\n'
        '[clock]\ntrust = "assume-synchronised"\n'
    )


def drop_batch(folder: Path, name: str, rows: range) -> None:
    """A CSV batch with empty serials (unbound: a Molto2's free profiles take them)."""
    lines = ["serial,secret,issuer,account"]
    lines += [",{},{},{}".format(b32(seed(i)), *account(i)[:2]) for i in rows]
    tmp = folder / f".{name}.tmp"
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.rename(folder / name)


def queue_states(home: Path) -> list[tuple[str, str, int | None]]:
    db = sqlite3.connect(home / "data" / "tokenstation" / "queue.sqlite3")
    try:
        rows = db.execute("SELECT account, state, profile FROM jobs ORDER BY id").fetchall()
    finally:
        db.close()
    return [(str(a), str(s), p) for a, s, p in rows]


def codes_right(sim: SimToken, expected: dict[int, bytes]) -> None:
    """Every profile shows the TOTP of its seed (one retry: a state written across a
    30 s step boundary may show either code)."""

    def wrong() -> list[int]:
        st = sim.fresh_state()
        bad = []
        for n, raw in expected.items():
            p = st["profiles"][n]
            if p["code"] != code_at(raw, st["host_time"] + p["clock_offset_s"], 30, "sha1", 6):
                bad.append(n)
        return bad

    assert not wrong() or not wrong()


def test_a_csv_batch_fills_100_profiles_then_sync_and_never_a_seed_over_a_seed(
    start_daemon: Start, simulator: Sim, tmp_path: Path
) -> None:
    folder = tmp_path / "drop"
    _daemon, bus = start_daemon(config=config(folder))
    wait_until(folder.exists, 5.0, "drop folder")
    drop_batch(folder, "batch.csv", range(100))
    taken = bus.expect("FileTaken", file="batch.csv")
    assert taken["verdict"] == "ok" and taken.get("queued_count") == 100
    sim = simulator("--model", "molto2", "--serial", SERIAL)
    measured = bus.expect("TokenMeasured", serial=SERIAL)
    assert (measured["model"], measured["profiles_total"], measured["profiles_used"]) == (
        "Molto2v2",
        100,
        0,
    )
    assert measured["profiles_count"] == 100 and len(measured["profiles"]) == 20  # bounded
    wait_until(lambda: bus.count("BurnDone", serial=SERIAL) == 100, 120.0, "100 burns")
    st = sim.fresh_state()
    profiles = st["profiles"]
    assert [p["title"] for p in profiles] == [account(i)[2] for i in range(100)]
    assert all(p["seed_writes"] == 1 and p["config_writes"] == 1 for p in profiles)
    assert [p["seed_fingerprint"] for p in profiles] == [
        hashlib.sha256(seed(i)).hexdigest()[:8] for i in range(100)
    ]
    codes_right(sim, {i: seed(i) for i in range(100)})
    home = tmp_path / "home"
    assert queue_states(home) == [(account(i)[1], "burned", i) for i in range(100)]
    log = (home / "data" / "tokenstation" / "provisioning-log.csv").read_text().splitlines()
    assert log[0].endswith(",profile") and log[1].endswith(",0") and log[100].endswith(",99")

    # Sync of every profile through the daemon: time only, one login, settings kept.
    synced = bus.run(bus.client.sync(SERIAL))
    assert synced["synced"] == 100 and len(synced["profiles"]) == 100  # the reply is whole
    assert abs(synced["drift_after_s"]) <= 1
    bus.expect("ProfilesSynced", serial=SERIAL, synced=100)
    st = sim.fresh_state()
    assert all(p["sync_writes"] == 1 and p["seed_writes"] == 1 for p in st["profiles"])
    codes_right(sim, {i: seed(i) for i in (0, 57, 99)})

    # A full Molto2: one more row waits, and no seed is written over another.
    drop_batch(folder, "more.csv", range(100, 101))
    bus.expect("FileTaken", file="more.csv")
    sim.proc.send_signal(signal.SIGUSR2)  # pulled out ...
    wait_until(lambda: not card_present(sim.reader), 5.0, "the Molto2 pulled")
    sim.proc.send_signal(signal.SIGUSR2)  # ... and plugged back in
    wait_until(lambda: bus.count("TokenMeasured", serial=SERIAL) == 2, 10.0, "placed again")
    again = [p for _t, n, p in bus.signals if n == "TokenMeasured"][-1]
    assert again["profiles_used"] == 100 and "next_free_profile" not in again
    time.sleep(0.5)  # the consideration that follows has no event of its own
    assert bus.count("BurnDone") == 100 and bus.count("BurnOffered") == 0
    assert queue_states(home)[-1] == ("alice", "queued", None)
    assert all(p["seed_writes"] == 1 for p in sim.fresh_state()["profiles"])


def test_a_molto2_pulled_mid_batch_resumes_at_the_next_free_profile_without_doubling(
    start_daemon: Start, simulator: Sim, tmp_path: Path, cli_bus: Cli
) -> None:
    folder = tmp_path / "drop"
    _daemon, bus = start_daemon(config=config(folder))
    wait_until(folder.exists, 5.0, "drop folder")
    drop_batch(folder, "batch.csv", range(1, 7))
    bus.expect("FileTaken", file="batch.csv")
    # APDUs behind vpcd: GET INFO, one public-data read to recognise it, 100 profile
    # reads; then the batch's one session: 8 for the first burn (with the login), 6 for
    # each next one (GET INFO, READ PROFILE, seed, title, config, read back). The second
    # burn is cut after its seed write (at its title).
    drop_after = 1 + 1 + 100 + 8 + 3
    sim = simulator(
        "--model",
        "molto2",
        "--serial",
        SERIAL,
        "--clock-offset",
        "30",
        "--profile-seed",
        f"2:{b32(b'kept-seed-of-someone-else')}:Keep",
        "--drop-after",
        str(drop_after),
    )
    failed = bus.expect("BurnFailed", serial=SERIAL)
    assert failed["outcome"] == "interrupted" and failed["job"]["profile"] == 1
    wait_until(lambda: not card_present(sim.reader), 5.0, "the Molto2 pulled")
    mid = sim.fresh_state()["profiles"]
    assert [p["seed_writes"] for p in mid[:3]] == [1, 1, 0] and mid[1]["title"] == ""
    sim.proc.send_signal(signal.SIGUSR2)  # plugged back in
    wait_until(lambda: bus.count("BurnDone", serial=SERIAL) == 6, 30.0, "the batch finished")
    done: list[dict[str, Any]] = [p for _t, n, p in bus.signals if n == "BurnDone"]
    assert [d["job"]["profile"] for d in done] == [0, 1, 3, 4, 5, 6]
    assert len({d["job"]["id"] for d in done}) == 6
    st = sim.fresh_state()["profiles"]
    assert [p["seed_writes"] for p in st[:8]] == [1, 1, 0, 1, 1, 1, 1, 0]
    assert st[2]["title"] == "Keep" and st[2]["config_writes"] == 0
    assert [st[n]["title"] for n in (0, 1, 3, 4, 5, 6)] == [account(i)[2] for i in range(1, 7)]
    codes_right(sim, {n: seed(i) for n, i in zip((0, 1, 3, 4, 5, 6), range(1, 7), strict=True)})
    states = queue_states(tmp_path / "home")
    assert [(s, p) for _a, s, p in states] == [("burned", n) for n in (0, 1, 3, 4, 5, 6)]

    # `tokenstation sync` goes through the daemon (never beside it to the same Molto2):
    # the kept profile's clock was 30 s fast; every seeded profile ends in time.
    text = cli_bus("sync", "--yes")
    assert text.returncode == 0, text.stderr
    assert f"Set the clock of 7 profiles of Molto2v2 {SERIAL}" in text.stdout
    # Profile clocks count whole seconds and a write sets the second, not its phase:
    # after a sync a profile is in time or off by one second (the JSON check below).
    assert re.search(
        r"the largest drift was 30 s fast; now (in time|1 s (fast|slow))", text.stdout
    ), text.stdout
    synced = json.loads(cli_bus("sync", "--yes", "--json").stdout)
    assert synced["via"] == "daemon" and synced["synced"] == 7
    assert abs(synced["drift_after_s"]) <= 1
    kept = next(p for p in synced["profiles"] if p["profile"] == 2)
    assert abs(kept["drift_before_s"]) <= 1 and abs(kept["drift_after_s"]) <= 1  # set before
    state = sim.fresh_state()["profiles"]
    assert state[2]["seed_writes"] == 0 and state[2]["sync_writes"] == 2


def test_commands_beside_the_daemon_go_through_it_or_are_refused_never_beside_it(
    start_daemon: Start, simulator: Sim, tmp_path: Path, cli_bus: Cli
) -> None:
    """`profiles` is answered from the daemon, `delete` and `burn --profile` go through
    it, a direct sync is refused: no APDU reaches the Molto2 from the command's own
    session (the simulator counts every APDU; the daemon's are known)."""
    folder = tmp_path / "drop"
    _daemon, bus = start_daemon(config=config(folder).replace('"station"', '"attended"'))
    sim = simulator(
        "--model",
        "molto2",
        "--serial",
        SERIAL,
        "--profile-seed",
        f"2:{b32(seed(2))}:Keep",
        "--profile-seed",
        f"5:{b32(seed(5))}:Other",
    )
    bus.expect("TokenMeasured", serial=SERIAL)
    apdus = sim.fresh_state()["apdus"]

    listing = json.loads(cli_bus("profiles", "--json", "--all").stdout)
    st = sim.fresh_state()
    assert listing["via"] == "daemon" and listing["serial"] == SERIAL
    assert [(r["profile"], r["title"], r["seed_present"]) for r in listing["profiles"]] == [
        (n, p["title"], p["seed_present"]) for n, p in enumerate(st["profiles"])
    ]
    assert (listing["free"], listing["next_free"]) == (98, 0)
    text = cli_bus("profiles")
    assert text.returncode == 0 and "(via the daemon): 100 profiles, 98 free" in text.stdout
    assert "Keep" in text.stdout

    over = cli_bus("burn", "--secret-file", "-", "--profile", "5", "--yes", stdin=b32(seed(7)))
    assert over.returncode == 4 and "already holds a seed (Other)" in over.stderr
    direct = cli_bus("sync", "--direct", "--yes")
    assert direct.returncode == 4 and "without --direct" in direct.stderr
    assert cli_bus("delete", "--profile", "2").returncode == 4  # asks first; no terminal
    assert sim.fresh_state()["apdus"] == apdus  # nothing above touched the Molto2

    deleted = json.loads(cli_bus("delete", "--profile", "2", "--yes", "--json").stdout)
    assert deleted == {
        "ok": True,
        "via": "daemon",
        "reader": sim.reader,
        "serial": SERIAL,
        "profile": 2,
        "deleted": True,
        "title": "Keep",
    }
    # The daemon's one session: GET INFO, the profile, DELETE, the read-backs; no other.
    assert sim.fresh_state()["apdus"] == apdus + 5
    kept = sim.fresh_state()["profiles"]
    assert kept[2]["seed_present"] is False and kept[2]["title"] == "Keep"
    assert kept[5]["seed_present"] is True
    event = bus.expect("ProfileDeleted", serial=SERIAL, profile=2)
    assert event["deleted"] is True and event["profiles_used"] == 1
    [present] = bus.run(bus.client.present())
    assert present["profiles_used"] == 1 and present["profiles"][2]["seed_present"] is False
    ops = bus.run(bus.client.token(SERIAL))["operations"]
    assert [(o["kind"], o["outcome"], o.get("profile")) for o in ops] == [("delete", "ok", 2)]

    # burn --profile N|next through the daemon: into that profile, never over a seed.
    uri = f"otpauth://totp/Bitbucket:alice?secret={b32(seed(7))}&issuer=Bitbucket"
    before = sim.fresh_state()["apdus"]
    out = json.loads(
        cli_bus("burn", "--uri-file", "-", "--profile", "7", "--yes", "--json", stdin=uri).stdout
    )
    assert (out["via"], out["profile"], out["title"]) == ("daemon", 7, "Bitbucket:al")
    assert out["secret_fingerprint"] == hashlib.sha256(seed(7)).hexdigest()[:8]
    assert sim.fresh_state()["apdus"] == before + 8  # the daemon's burn session only
    raw = cli_bus(
        "burn",
        "--secret-file",
        "-",
        "--profile",
        "next",
        "--title",
        "VPN",
        "--yes",
        stdin=b32(seed(8)),
    )
    assert raw.returncode == 0, raw.stderr
    assert "into profile 0 of Molto2" in raw.stdout and "(through the daemon)" in raw.stdout
    st = sim.fresh_state()["profiles"]
    assert (st[7]["title"], st[0]["title"]) == ("Bitbucket:al", "VPN")
    assert st[7]["seed_fingerprint"] == hashlib.sha256(seed(7)).hexdigest()[:8]
    assert [st[n]["seed_writes"] for n in (0, 5, 7)] == [1, 0, 1]
    codes_right(sim, {7: seed(7), 0: seed(8)})
    again = cli_bus("burn", "--uri-file", "-", "--profile", "next", "--yes", stdin=uri)
    assert again.returncode == 4 and "already held by" in again.stderr  # a secret burns once
    assert bus.count("BurnOffered") == 0  # held for the caller, never offered meanwhile
    assert [s for _a, s, _p in queue_states(tmp_path / "home")] == ["burned", "burned"]
    ledger = json.loads(cli_bus("profiles", "--json", "--all").stdout)
    assert ledger["profiles"][7]["account"] == "Bitbucket:alice" and ledger["free"] == 97
