"""The station unit: TCP allowed for a shared PostgreSQL, no core dumps, and an exposure
that `systemd-analyze security` rates no worse than the 3.1 it had before."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tokenstation.daemon.units import system_unit, user_unit

ROOT = Path(__file__).resolve().parents[2]
STATION = ROOT / "packaging" / "systemd" / "system" / "tokenstation-station.service"


def _setting(unit: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith(key + "=")]


def test_station_unit_reaches_a_shared_database_and_dumps_no_core() -> None:
    unit = system_unit("/usr/bin/tokenstation")
    (families,) = _setting(unit, "RestrictAddressFamilies")
    assert set(families.split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert _setting(unit, "LimitCORE") == ["0"]
    assert _setting(unit, "SystemCallFilter") == ["@system-service"]
    for key in ("RestrictSUIDSGID", "RemoveIPC"):
        assert _setting(unit, key) == ["yes"], key
    assert _setting(unit, "ProtectProc") == ["invisible"]
    assert _setting(user_unit("/usr/bin/tokenstation"), "LimitCORE") == ["0"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_station_unit_exposure_no_worse_than_before() -> None:
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(STATION)],
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d)", done.stdout)
    assert found, done.stdout + done.stderr
    assert float(found.group(1)) <= 3.1
