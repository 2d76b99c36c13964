"""Crashes and second starts on the real stack: no seed lost, none written twice.

The daemon is killed at every step of a burn (``TOKENSTATION_TEST_CRASH_AT``, a hook
only tests set: the process calls ``os._exit`` there, as a power cut would) and started
again; a second daemon started during a burn is refused and the burn completes.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tokenstation.daemon.bus.client import DaemonError
from tokenstation.daemon.faults import CRASH_ENV, CRASH_STATUS
from tokenstation.daemon.simulator.privatebus import PrivateBus

from conftest import BusWatcher, DaemonProc, SimToken, wait_until

pytestmark = pytest.mark.pcsc

C302 = "86596320000001"
URI = "otpauth://totp/Bitbucket:alice?secret=JBSWY3DPEHPK3PXP&issuer=Bitbucket"
URI2 = "otpauth://totp/ACME:bob?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=ACME"
STEPS = ("intent", "written", "registry", "burned", "logged")


def config(tmp: Path, folder: Path, mode: str) -> Path:
    path = tmp / f"config-{mode}.toml"
    path.write_text(
        f'mode = "{mode}"\n[drop]\nfolder = "{folder}"\nstability_delay = 0.3\n'
        '[clock]\ntrust = "assume-synchronised"\n'
    )
    return path


def jobs_by_label(bus: BusWatcher) -> dict[str, dict[str, Any]]:
    return {j["label"]: j for j in bus.run(bus.client.jobs())}


@pytest.mark.parametrize("step", STEPS)
def test_killed_at_any_step_of_a_station_mode_burn_nothing_is_written_twice(
    step: str,
    simulator: Callable[..., SimToken],
    station_env: dict[str, str],
    private_bus: str,
    tmp_path: Path,
) -> None:
    folder = tmp_path / "drop"
    args = ["--config", str(config(tmp_path, folder, "station"))]
    bus = BusWatcher(private_bus)
    first = DaemonProc({**station_env, CRASH_ENV: step}, args, tmp_path / "first.log")
    again: DaemonProc | None = None
    try:
        wait_until(folder.exists, 5.0)
        (folder / "alice.txt").write_text(URI)
        bus.expect("FileTaken", file="alice.txt")
        sim = simulator("--serial", C302)
        wait_until(lambda: first.proc.poll() is not None, 20.0, "the crash point")
        assert first.proc.returncode == CRASH_STATUS, first.output()
        written = sim.fresh_state()["seed_writes"]
        assert written == (0 if step == "intent" else 1)
        assert bus.count("BurnDone") == 0

        again = DaemonProc(station_env, args, tmp_path / "again.log")
        bus.expect("TokenMeasured", serial=C302)
        (folder / "bob.txt").write_text(URI2)  # a fresh unbound job, to tempt station mode
        bus.expect("FileTaken", file="bob.txt")
        sim.power_cycle()
        bus.expect("TokenMeasured", serial=C302, timeout=10.0)
        time.sleep(1.0)
        assert sim.fresh_state()["seed_writes"] == written  # never again without a person
        assert bus.count("BurnDone") == 0
        jobs = jobs_by_label(bus)
        assert jobs["ACME:bob"]["state"] == "queued"
        alice = jobs["Bitbucket:alice"]
        if step in ("intent", "written", "registry"):
            assert alice["state"] == "failed"
            assert "may or may not hold the seed" in alice["reason"]
        else:
            assert alice["state"] == "burned"
        [token] = bus.run(bus.client.tokens())
        assert token["provisioned"] is True
    finally:
        first.stop()
        if again is not None:
            again.stop()
        bus.close()


def start_second(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tokenstation.daemon", "daemon"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_a_second_daemon_during_a_burn_is_refused_and_the_burn_completes(
    simulator: Callable[..., SimToken],
    station_env: dict[str, str],
    private_bus: str,
    tmp_path: Path,
) -> None:
    folder = tmp_path / "drop"
    args = ["--config", str(config(tmp_path, folder, "attended"))]
    bus = BusWatcher(private_bus)
    first = DaemonProc(station_env, args, tmp_path / "first.log")
    other_bus = PrivateBus().start()
    try:
        wait_until(folder.exists, 5.0)
        (folder / "alice.txt").write_text(URI)
        [job] = bus.expect("FileTaken", file="alice.txt")["queued"]
        simulator("--serial", C302, "--delay", "2.0", "--delay-ins", "C5")
        bus.expect("BurnOffered", serial=C302)
        outcome: dict[str, object] = {}

        def burn() -> None:
            try:
                outcome["done"] = bus.run(bus.client.burn_job(job["id"], C302), timeout=30)
            except DaemonError as exc:
                outcome["error"] = exc

        t = threading.Thread(target=burn)
        t.start()
        time.sleep(1.6)  # WRITE SEED is held by the simulator now
        pid = first.proc.pid
        # Same bus, same state: the state lock refuses it.
        same = start_second(station_env)
        # Another bus, same state directory.
        other = start_second({**station_env, "DBUS_SESSION_BUS_ADDRESS": other_bus.address})
        # Same bus, other state directories: the bus name refuses it.
        home2 = tmp_path / "home2"
        elsewhere = start_second(
            {
                **station_env,
                "XDG_STATE_HOME": str(home2 / "state"),
                "XDG_DATA_HOME": str(home2 / "data"),
            }
        )
        for second in (same, other, elsewhere):
            assert second.returncode != 0, second
            assert "another tokenstation daemon" in second.stderr
            assert f"pid {pid}" in second.stderr and "session bus" in second.stderr
            assert "Traceback" not in second.stderr
        t.join(30)
        assert "done" in outcome, outcome
        done = bus.expect("BurnDone", serial=C302)
        assert done["job"]["state"] == "burned"
        log_path = Path(station_env["XDG_DATA_HOME"]) / "tokenstation" / "provisioning-log.csv"
        rows = list(csv.DictReader(log_path.open()))
        assert [(r["serial"], r["job_id"]) for r in rows] == [(C302, str(job["id"]))]
        [token] = bus.run(bus.client.tokens())
        assert token["provisioned"] is True
        assert first.proc.poll() is None
    finally:
        other_bus.stop()
        first.stop()
        bus.close()


MOLTO2 = "58000001"


@pytest.mark.parametrize("step", ("intent", "profile", *STEPS[1:]))
def test_killed_at_any_step_of_a_molto2_batch_no_profile_is_written_twice(
    step: str,
    simulator: Callable[..., SimToken],
    station_env: dict[str, str],
    private_bus: str,
    tmp_path: Path,
) -> None:
    """Station mode burns three jobs into a Molto2 in one card session; the daemon is
    killed at ``step`` (``profile``: after the first profile is on the token, before the
    second) and started again with the Molto2 still placed: every job ends burned, each
    profile got its seed once, none was lost or doubled."""
    folder = tmp_path / "drop"
    args = ["--config", str(config(tmp_path, folder, "station"))]
    bus = BusWatcher(private_bus)
    first = DaemonProc({**station_env, CRASH_ENV: step}, args, tmp_path / "first.log")
    again: DaemonProc | None = None
    try:
        wait_until(folder.exists, 5.0)
        rows = [f",{secret},Svc{i},user{i}" for i, secret in enumerate(MOLTO2_SECRETS)]
        (folder / "batch.csv").write_text("serial,secret,issuer,account\n" + "\n".join(rows) + "\n")
        bus.expect("FileTaken", file="batch.csv")
        sim = simulator("--model", "molto2", "--serial", MOLTO2)
        wait_until(lambda: first.proc.poll() is not None, 20.0, "the crash point")
        assert first.proc.returncode == CRASH_STATUS, first.output()
        on_token = {"intent": 0, "profile": 1}.get(step, 3)
        before = [p["seed_writes"] for p in sim.fresh_state()["profiles"][:4]]
        assert before == [1] * on_token + [0] * (4 - on_token)
        assert bus.count("BurnDone") == 0

        again = DaemonProc(station_env, args, tmp_path / "again.log")
        wait_until(
            lambda: {j["state"] for j in bus.run(bus.client.jobs())} == {"burned"},
            20.0,
            "every job of the batch burned",
        )
        profiles = sim.fresh_state()["profiles"]
        assert [p["seed_writes"] for p in profiles[:4]] == [1, 1, 1, 0]
        assert [p["title"] for p in profiles[:3]] == ["Svc0:user0", "Svc1:user1", "Svc2:user2"]
        jobs = jobs_by_label(bus)
        assert sorted(j["profile"] for j in jobs.values()) == [0, 1, 2]
    finally:
        first.stop()
        if again is not None:
            again.stop()
        bus.close()


MOLTO2_SECRETS = (
    "JBSWY3DPEHPK3PXPJBSWY3DP",
    "GEZDGNBVGY3TQOJQGEZDGNBV",
    "MFRGGZDFMZTWQ2LKMFRGGZDF",
)
