"""The system-bus policy in packaging/dbus, loaded by a real dbus-daemon.

The shipped file names the user and group `tokenstation`; here they become root
(who runs the daemon in the test) and `users`, and clients run as `nobody` with and
without that group (setpriv). Needs root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tokenstation.daemon.simulator.privatebus import PrivateBus

from conftest import DaemonProc

POLICY = Path(__file__).parents[2] / "packaging/dbus/org.tokenstation.TokenStation1.conf"
DEST = ("org.tokenstation.TokenStation1", "/org/tokenstation/TokenStation1")
IFACE = "org.tokenstation.TokenStation1"


@pytest.fixture
def system_bus(tmp_path: Path) -> Iterator[str]:
    if os.geteuid() != 0 or not shutil.which("setpriv") or not shutil.which("busctl"):
        if os.environ.get("CI"):
            pytest.fail("the policy test needs root, setpriv and busctl under CI")
        pytest.skip("needs root, setpriv and busctl")
    policy = tmp_path / "policy.conf"
    policy.write_text(
        POLICY.read_text()
        .replace('user="tokenstation"', 'user="root"')
        .replace('group="tokenstation"', 'group="users"')
    )
    bus = PrivateBus(system=True, include=policy).start()
    yield bus.address
    bus.stop()


NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def busctl(
    address: str, member: str, *args: str, groups: str | None
) -> subprocess.CompletedProcess[str]:
    who = ["setpriv", "--reuid=nobody", "--regid=nogroup"]
    who += [f"--groups={groups}"] if groups else ["--clear-groups"]
    return subprocess.run(
        [*who, "busctl", f"--address={address}", "call", *DEST, IFACE, member, *args],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


def test_only_the_group_may_write_and_anyone_may_read(
    system_bus: str, station_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**station_env, "DBUS_SYSTEM_BUS_ADDRESS": system_bus}
    daemon = DaemonProc(env, ["--bus", "system"], tmp_path / "daemon.log")
    try:
        status = busctl(system_bus, "GetStatus", groups=None)
        assert status.returncode == 0, status.stderr
        assert "tokens_present" in status.stdout

        denied = busctl(system_bus, "SyncToken", "sa{sv}", "", "0", groups=None)
        assert denied.returncode != 0
        assert "denied" in denied.stderr.lower()
        paused = busctl(system_bus, "Pause", groups=None)
        assert "denied" in paused.stderr.lower()
        deleting = busctl(system_bus, "DeleteProfile", "su", "", "0", groups=None)
        assert "denied" in deleting.stderr.lower()

        # The command says who may, and how to become one (exit 4: refused, nothing done).
        cli = subprocess.run(
            [
                *NOBODY,
                sys.executable,
                "-m",
                "tokenstation.daemon",
                "queue",
                "pause",
                "--bus",
                "system",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert cli.returncode == 4, cli.stderr
        assert "only members of the tokenstation group" in cli.stderr.splitlines()[0]
        assert "sudo adduser $USER tokenstation" in cli.stderr

        member = busctl(system_bus, "SyncToken", "sa{sv}", "", "0", groups="users")
        # Past the policy: the daemon itself answers (no token is present).
        assert "no token on any reader" in member.stderr, member.stderr
    finally:
        assert daemon.stop() == 0
