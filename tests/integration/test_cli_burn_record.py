"""A burn from the command line is the station's burn: recorded as the daemon records
its own (registry, provisioning log), and never burned over by a station-mode daemon,
whether the daemon ran during the burn (it went through it) or not (it was direct)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import BusWatcher, DaemonProc, SimToken, wait_until

pytestmark = pytest.mark.pcsc

Start = Callable[..., tuple[DaemonProc, BusWatcher]]
Cli = Callable[..., subprocess.CompletedProcess[str]]
Sim = Callable[..., SimToken]

P2 = "86596220000555"  # an OTPC-P2-i
ALICE = "otpauth://totp/Acme:carol?secret=JBSWY3DPEHPK3PXP&issuer=Acme"
ALICE_FP = "9b5f5e29"  # the fingerprint of JBSWY3DPEHPK3PXP
BOB = "otpauth://totp/Zeta:bob?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Zeta"


def station_config(folder: Path) -> str:
    return (
        f'mode = "station"\n[drop]\nfolder = "{folder}"\nstability_delay = 0.3\n'
        '[clock]\ntrust = "assume-synchronised"\n'
    )


def uri_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "carol.uri"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    return str(path)


def assert_recorded(cli_bus: Cli, home: Path) -> None:
    """`tokens SERIAL` shows the burn; the provisioning log has its row."""
    proc = cli_bus("tokens", P2, "--json")
    assert proc.returncode == 0, proc.stderr
    token = json.loads(proc.stdout)
    token = token["tokens"][0] if "tokens" in token else token
    assert token["provisioned"] is True
    burns = [op for op in token["operations"] if op["kind"] == "burn"]
    assert burns and burns[-1]["outcome"] == "ok"
    assert burns[-1]["secret_fingerprint"] == ALICE_FP
    log = (home / "data" / "tokenstation" / "provisioning-log.csv").read_text()
    [row] = [line for line in log.splitlines() if P2 in line]
    assert ALICE_FP in row and "carol" in row


def job_waits_and_is_not_burned_over(
    bus: BusWatcher, sim: SimToken, folder: Path, daemon: DaemonProc
) -> None:
    wait_until(folder.exists, 5.0)
    (folder / "bob.txt").write_text(BOB)
    bus.expect("FileTaken", file="bob.txt")
    sim.power_cycle()
    bus.expect("TokenMeasured", serial=P2)
    time.sleep(1.5)  # a station-mode burn would have started by now
    state = sim.fresh_state()
    assert state["seed_fingerprint"] == ALICE_FP and state["seed_writes"] == 1
    assert bus.count("BurnDone", serial=P2) <= 1  # at most the CLI's own, none of bob's
    assert all(
        j["label"] != "Zeta:bob" or j["state"] == "queued" for j in bus.run(bus.client.jobs())
    )
    assert f"no burn for {P2}" in daemon.output()


def test_a_direct_burn_is_recorded_and_station_mode_never_burns_over_it(
    start_daemon: Start, cli_bus: Cli, simulator: Sim, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    sim = simulator("--serial", P2)
    proc = cli_bus("burn", "--uri-file", uri_file(tmp_path, ALICE), "--yes", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "via" not in json.loads(proc.stdout)  # no daemon: direct
    assert sim.fresh_state()["seed_fingerprint"] == ALICE_FP
    assert_recorded(cli_bus, home)  # read from the registry file

    folder = tmp_path / "drop"
    daemon, bus = start_daemon(config=station_config(folder))
    job_waits_and_is_not_burned_over(bus, sim, folder, daemon)
    [line] = [s for s in daemon.output().splitlines() if f"no burn for {P2}" in s][-1:]
    assert "station mode never burns over it" in line and "ok, command line on" in line
    assert_recorded(cli_bus, home)  # and through the daemon


def test_a_burn_while_the_daemon_runs_goes_through_it_and_is_never_burned_over(
    start_daemon: Start, cli_bus: Cli, simulator: Sim, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    folder = tmp_path / "drop"
    daemon, bus = start_daemon(config=station_config(folder))
    sim = simulator("--serial", P2)
    bus.expect("TokenMeasured", serial=P2)
    proc = cli_bus("burn", "--uri-file", uri_file(tmp_path, ALICE), "--yes", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["via"] == "daemon" and out["serial"] == P2
    done = bus.expect("BurnDone", serial=P2)
    assert done["origin"] == "manual"
    assert sim.fresh_state()["seed_fingerprint"] == ALICE_FP
    assert_recorded(cli_bus, home)
    job_waits_and_is_not_burned_over(bus, sim, folder, daemon)

    # The same secret again, under another name: refused, naming the job that holds it.
    again = cli_bus(
        "burn",
        "--uri-file",
        uri_file(tmp_path, ALICE.replace("Acme:carol", "Zeta:newperson")),
        "--yes",
    )
    assert again.returncode == 4, again.stderr
    assert f"already held by job {done['job']['id']}, Acme:carol (burned)" in again.stderr

    daemon.stop()  # and after the daemon stopped: still known, still never burned over
    daemon2, bus2 = start_daemon(config=station_config(folder))
    job_waits_and_is_not_burned_over(bus2, sim, folder, daemon2)


def test_a_direct_sync_is_recorded_as_a_daemon_sync_is(
    start_daemon: Start, cli_bus: Cli, simulator: Sim, tmp_path: Path
) -> None:
    c302 = "86596320000001"
    simulator("--serial", c302, "--clock-offset", "20.0")
    settings = ["--algorithm", "sha1", "--period", "30", "--display-timeout", "30"]
    proc = cli_bus("sync", *settings, "--yes", "--json")  # no daemon: directly
    assert proc.returncode == 0, proc.stderr
    token = json.loads(cli_bus("tokens", c302, "--json").stdout)
    token = token["tokens"][0] if "tokens" in token else token
    [op] = token["operations"]
    assert (op["kind"], op["outcome"]) == ("sync", "ok") and "command line" in op["detail"]
    assert 19.0 < op["drift_before_s"] < 21.0 and abs(op["drift_after_s"]) < 1.0
    assert token["settings"] == {"hmac": "sha1", "period": 30, "display_timeout": 30}
    assert token["provisioned"] is False and token["measurements"] == 2  # before, after

    start_daemon(config='[clock]\ntrust = "assume-synchronised"\n')  # then through it
    wait_until(lambda: cli_bus("status").returncode == 0, 5.0)
    proc = cli_bus("sync", "--yes", "--json")  # the settings the direct sync recorded
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["via"] == "daemon"
    token = json.loads(cli_bus("tokens", c302, "--json").stdout)
    token = token["tokens"][0] if "tokens" in token else token
    assert [op["kind"] for op in token["operations"]] == ["sync", "sync"]
