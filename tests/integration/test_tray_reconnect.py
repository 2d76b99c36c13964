"""The tray starts before the daemon, follows it through a restart, and says when it is gone.

No display and no notification server here: the tray runs with --no-icon and logs each
bubble it would show, which is what these tests read.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import TRANSCRIPT, DaemonProc, SimToken, wait_until

pytestmark = pytest.mark.pcsc


def test_tray_before_daemon_and_across_a_restart(
    station_env: dict[str, str], simulator: Callable[..., SimToken], tmp_path: Path
) -> None:
    log = tmp_path / "tray.log"
    env = {**station_env, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    tray = subprocess.Popen(
        [sys.executable, "-m", "tokenstation.daemon", "tray", "--no-icon", "--log-level", "debug"],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: "tray ready" in log.read_text(), 15.0, "tray ready")
        assert "no notification server" in log.read_text()
        daemon = DaemonProc(env, [], tmp_path / "d1.log")
        sim = simulator("--serial", "86596320000001", "--clock-offset", "4.2")
        wait_until(lambda: "Clock 4.2 s fast" in log.read_text(), 10.0, "first bubble")

        daemon.stop()
        wait_until(lambda: "tokenstation daemon stopped" in log.read_text(), 10.0, "gone")
        daemon = DaemonProc(env, [], tmp_path / "d2.log")
        sim.power_cycle()
        wait_until(
            lambda: log.read_text().count("Clock 4.2 s fast") >= 2, 10.0, "bubble after restart"
        )
        daemon.stop()
    finally:
        tray.send_signal(signal.SIGTERM)
        assert tray.wait(10) == 0
        TRANSCRIPT.append(("tray log", log.read_text()))
