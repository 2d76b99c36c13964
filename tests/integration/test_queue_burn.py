"""`queue burn ID`: the tray's Burn from a shell; `queue list` names the token it went to."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import BusWatcher, DaemonProc, SimToken, wait_until

pytestmark = pytest.mark.pcsc

C302, C302B = "86596320000001", "86596320000002"
URI = "otpauth://totp/Bitbucket:alice?secret=JBSWY3DPEHPK3PXP&issuer=Bitbucket"
URI2 = "otpauth://totp/GitHub:bob?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=GitHub"
Start = Callable[..., tuple[DaemonProc, BusWatcher]]
Cli = Callable[..., subprocess.CompletedProcess[str]]


def test_queue_burn_accepts_the_offer_and_the_list_shows_the_serial(
    start_daemon: Start,
    simulator: Callable[..., SimToken],
    cli_bus: Cli,
    tmp_path: Path,
) -> None:
    folder = tmp_path / "drop"
    _daemon, bus = start_daemon(
        config=f'[drop]\nfolder = "{folder}"\n[clock]\ntrust = "assume-synchronised"\n'
    )
    uri = tmp_path / "alice.txt"
    uri.write_text(URI + "\n")
    other = tmp_path / "bob.txt"
    other.write_text(URI2 + "\n")
    assert cli_bus("queue", "add", str(uri)).returncode == 0
    assert cli_bus("queue", "add", str(other)).returncode == 0
    jobs = json.loads(cli_bus("queue", "list", "--json").stdout)["jobs"]
    alice = next(j["id"] for j in jobs if j["label"] == "Bitbucket:alice")
    bob = next(j["id"] for j in jobs if j["label"] == "GitHub:bob")

    none = cli_bus("queue", "burn", str(alice))
    assert none.returncode == 2 and "no token is on a reader" in none.stderr, none.stderr

    sim = simulator("--serial", C302, slot=0)
    bus.expect("BurnOffered", serial=C302)
    assert sim.fresh_state()["seed_writes"] == 0  # attended: nothing without a yes

    done = cli_bus("queue", "burn", str(alice))  # the one token on the readers
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Burned job {alice} (Bitbucket:alice) onto token {C302} (C302-i)." in done.stdout
    assert "Switch it off and on: it should show " in done.stdout
    assert sim.fresh_state()["seed_writes"] == 1

    listed = cli_bus("queue", "list", "--all").stdout
    line = next(x for x in listed.splitlines() if "Bitbucket:alice" in x)
    assert f"burned onto {C302} by " in line, listed

    second = simulator("--serial", C302B, slot=1)
    wait_until(lambda: C302B in cli_bus("status").stdout, 10, "the second token seen")
    two = cli_bus("queue", "burn", str(bob))
    assert two.returncode == 2 and "--serial S" in two.stderr, two.stderr
    assert "are on the readers" in two.stderr
    burned = cli_bus("queue", "burn", str(bob), "--serial", C302B, "--json")
    assert burned.returncode == 0, burned.stderr
    doc = json.loads(burned.stdout)
    assert doc["serial"] == C302B and doc["job"]["state"] == "burned"
    assert "JBSWY3DPEHPK3PXP" not in burned.stdout and "GEZDGNBV" not in burned.stdout
    assert second.fresh_state()["seed_writes"] == 1
    again = cli_bus("queue", "burn", str(bob), "--serial", C302B)
    assert again.returncode == 4 and "is burned, not queued" in again.stderr, again.stderr  # once
