"""Every Molto2 write checked, and one drift figure per Molto2, on the real pcscd + vpcd
with `simulate --model molto2` (its `--clock-ignores-writes` fault: config and sync
writes answer 90 00 and no profile clock moves), the CLI and the daemon."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from test_molto2 import b32, burn_secret, js, molto2

from tokenstation.daemon.events import TokenMeasured, decode
from tokenstation.tray.model import TrayModel

from conftest import BusWatcher, DaemonProc, SimToken

Cli = Callable[..., subprocess.CompletedProcess[str]]
Sim = Callable[..., SimToken]
Start = Callable[..., tuple[DaemonProc, BusWatcher]]

pytestmark = pytest.mark.pcsc

SEEDS = [f"tokenstation-test-{i:05d}".encode() for i in range(150, 160)]
CONFIG = '[clock]\ntrust = "assume-synchronised"\n'
PRECISION = "(whole-second clock, ±1 s)"


def faulty(simulator: Sim, *args: str) -> SimToken:
    """A Molto2 300 s slow whose profile clocks ignore writes, profiles 1 and 3 seeded."""
    return molto2(
        simulator,
        "--clock-offset",
        "-300",
        "--clock-ignores-writes",
        *(a for n in (1, 3) for a in ("--profile-seed", f"{n}:{b32(SEEDS[n])}:p{n}")),
        *args,
    )


def failure(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    out: dict[str, Any] = json.loads(proc.stdout)
    assert out["ok"] is False
    return out


def test_a_direct_sync_and_burn_fail_when_the_clock_does_not_take(
    cli_bus: Cli, simulator: Sim
) -> None:
    mcli = cli_bus  # no daemon on that bus: the commands drive the Molto2 directly
    sim = faulty(simulator)
    out = failure(mcli("sync", "--yes", "--json"))
    text = json.dumps(out, ensure_ascii=False)
    assert "did not take the time written" in text and "reads 300 s slow" in text
    assert '"ok": true' not in text and "now 300 s slow" not in text
    st = sim.fresh_state()
    assert st["profiles"][1]["sync_writes"] == 1 and st["profiles"][3]["sync_writes"] == 0

    burned = failure(burn_secret(mcli, SEEDS[5], "next", "--json"))
    text = json.dumps(burned, ensure_ascii=False)
    assert "its clock did not take the time written" in text and "codes are wrong" in text
    assert sim.fresh_state()["profiles"][0]["seed_present"] is True  # the seed landed: said
    plain = burn_secret(mcli, SEEDS[6], "next")
    assert plain.returncode == 1 and "did not take" in plain.stderr

    listing = js(mcli("profiles", "--json"))
    assert listing["drift_s"] == -300 and listing["drift_words"] == f"300 s slow {PRECISION}"


def test_through_the_daemon_sync_and_burn_fail_and_the_views_say_so(
    start_daemon: Start, simulator: Sim, cli_bus: Cli
) -> None:
    _daemon, bus = start_daemon(config=CONFIG)
    faulty(simulator)
    bus.expect("TokenMeasured", serial="58000001")

    out = failure(cli_bus("sync", "--yes", "--json"))
    assert "did not take the time written" in json.dumps(out)
    failed = bus.expect("SyncFailed", serial="58000001")
    assert failed["outcome"] == "failed" and "reads 300 s slow" in failed["message"]
    assert "sync once more" in failed["next_step"]
    assert bus.count("ProfilesSynced") == 0
    updated = bus.expect("TokenUpdated", after="sync")
    assert updated["outcome"] == "failed" and updated["drift_s"] == -300
    assert updated["sync_offered"] is True

    burn = cli_bus("burn", "--secret-file", "-", "--profile", "next", "--yes", stdin=b32(SEEDS[7]))
    assert burn.returncode == 1 and "did not take the time written" in burn.stderr
    failed_burn = bus.expect("BurnFailed", serial="58000001")
    assert failed_burn["outcome"] == "failed" and "codes are wrong" in failed_burn["message"]
    assert bus.count("BurnDone") == 0


def test_every_path_reports_one_drift_figure_for_one_molto2(
    start_daemon: Start, simulator: Sim, cli_bus: Cli
) -> None:
    daemon, bus = start_daemon(config=CONFIG)
    molto2(
        simulator,
        "--clock-offset",
        "6.8",
        *(a for n in (0, 4) for a in ("--profile-seed", f"{n}:{b32(SEEDS[n])}:p{n}")),
    )
    measured = bus.expect("TokenMeasured", serial="58000001")
    figure = measured["drift_s"]
    assert figure in (6, 7)  # 6.8 s read from whole-second clocks
    words = f"{figure:.0f} s fast {PRECISION}"
    assert measured["drift_words"] == words

    logged = re.findall(r"Molto2 58000001 on .*?, clock (.*)", daemon.output())
    assert logged == [words]
    listing = js(cli_bus("profiles", "--json"))
    assert (listing["drift_s"], listing["drift_words"]) == (figure, words)
    assert f"Clock: {words}" in cli_bus("profiles").stdout
    status = cli_bus("status")
    assert status.returncode == 0 and f"2 of 100 profiles used, {words}" in status.stdout
    tray = TrayModel()
    tray.connected = True
    tray.apply(decode(TokenMeasured, measured))
    assert tray.menu()[0].text == f"58000001 Molto2v2: 2 of 100 profiles used, {words}"

    synced = cli_bus("sync", "--yes")
    assert synced.returncode == 0, synced.stderr
    assert f"the largest drift was {figure:.0f} s fast; now in time {PRECISION}" in synced.stdout
    assert "ProfilesSynced" in bus.names()
    after = js(cli_bus("profiles", "--json"))
    assert after["drift_words"] == f"in time {PRECISION}"
    assert f"in time {PRECISION}" in cli_bus("status").stdout
