"""The system-bus policy in packaging/dbus, loaded by a real dbus-daemon.

The shipped file names the user and group `tokenstation`; here they become root
(who runs the daemon in the test) and `users`, and clients run as `nobody` with and
without that group (setpriv). Needs root.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import DaemonProc

POLICY = Path(__file__).parents[2] / "packaging/dbus/org.tokenstation.TokenStation1.conf"
DEST = ("org.tokenstation.TokenStation1", "/org/tokenstation/TokenStation1")
IFACE = "org.tokenstation.TokenStation1"

SYSTEM_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <!-- The default policy of Debian's /usr/share/dbus-1/system.conf -->
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <include>{policy}</include>
</busconfig>
"""


@pytest.fixture
def system_bus() -> Iterator[str]:
    if os.geteuid() != 0 or not shutil.which("setpriv") or not shutil.which("busctl"):
        if os.environ.get("CI"):
            pytest.fail("the policy test needs root, setpriv and busctl under CI")
        pytest.skip("needs root, setpriv and busctl")
    work = Path(tempfile.mkdtemp(prefix="ts-policy-"))
    work.chmod(0o755)
    policy = work / "policy.conf"
    text = POLICY.read_text()
    policy.write_text(
        text.replace('user="tokenstation"', 'user="root"').replace(
            'group="tokenstation"', 'group="users"'
        )
    )
    socket = work / "bus"
    conf = work / "system.conf"
    conf.write_text(SYSTEM_CONF.format(socket=socket, policy=policy))
    out = subprocess.run(
        ["dbus-daemon", f"--config-file={conf}", "--fork", "--print-pid=1"],
        capture_output=True,
        text=True,
        check=True,
    )
    yield f"unix:path={socket}"
    os.kill(int(out.stdout.split()[0]), signal.SIGTERM)
    shutil.rmtree(work, ignore_errors=True)


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

        member = busctl(system_bus, "SyncToken", "sa{sv}", "", "0", groups="users")
        # Past the policy: the daemon itself answers (no token is present).
        assert "no token on any reader" in member.stderr, member.stderr
    finally:
        assert daemon.stop() == 0
