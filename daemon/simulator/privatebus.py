"""A private dbus-daemon for tests, demos and benchmarks: session-like or system-like.

Session-like: anyone may own and call anything; optional activatable services (the
tests activate the real systemd-timedated). System-like: Debian's default system
policy plus an included policy file (the one in packaging/dbus), so that file is
checked by a real dbus-daemon.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

_HEAD = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>{type}</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
"""

_OPEN_POLICY = """  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
"""

# The default policy of Debian's /usr/share/dbus-1/system.conf.
_SYSTEM_POLICY = """  <policy context="default">
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
"""

TIMEDATED = Path("/lib/systemd/systemd-timedated")


class PrivateBus:
    """One dbus-daemon in a temporary folder; ``address`` once started."""

    def __init__(
        self,
        *,
        system: bool = False,
        services: dict[str, Path] | None = None,
        include: Path | None = None,
    ) -> None:
        self.system = system
        self.services = services or {}
        self.include = include
        self.workdir = Path(tempfile.mkdtemp(prefix="ts-bus-"))
        self.workdir.chmod(0o755)  # clients may run as another user (policy tests)
        self.socket = self.workdir / "bus"
        self.address = f"unix:path={self.socket}"
        self.pid: int | None = None

    def config(self) -> str:
        """The bus configuration file's text."""
        text = _HEAD.format(type="system" if self.system else "session", socket=self.socket)
        if self.services:
            folder = self.workdir / "services"
            folder.mkdir(exist_ok=True)
            for name, exe in self.services.items():
                (folder / f"{name}.service").write_text(
                    f"[D-BUS Service]\nName={name}\nExec={exe}\n"
                )
            text += f"  <servicedir>{folder}</servicedir>\n"
        text += _SYSTEM_POLICY if self.system else _OPEN_POLICY
        if self.include is not None:
            text += f"  <include>{self.include}</include>\n"
        return text + "</busconfig>\n"

    def start(self) -> PrivateBus:
        """Start dbus-daemon; activated services see this bus as their system bus too."""
        conf = self.workdir / "bus.conf"
        conf.write_text(self.config())
        env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.address}
        out = subprocess.run(
            ["dbus-daemon", f"--config-file={conf}", "--fork", "--print-pid=1"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        self.pid = int(out.stdout.split()[0])
        return self

    def stop(self) -> None:
        """Stop dbus-daemon and remove the folder."""
        pid, self.pid = self.pid, None
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        shutil.rmtree(self.workdir, ignore_errors=True)


def isolated_env(base: dict[str, str], bus_address: str, home: Path) -> dict[str, str]:
    """``base`` with the private bus as session and system bus and XDG folders in ``home``.

    What the tests, the demo and the benchmarks give the daemon and its clients, so that
    nothing of the host's configuration, registry, queue or session is used.
    """
    return {
        **base,
        "DBUS_SESSION_BUS_ADDRESS": bus_address,
        "DBUS_SYSTEM_BUS_ADDRESS": bus_address,
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_STATE_HOME": str(home / "state"),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "HOME": str(home),
    }


def timedated_service() -> dict[str, Path]:
    """The real systemd-timedated as an activatable service, where installed."""
    return {"org.freedesktop.timedate1": TIMEDATED} if TIMEDATED.exists() else {}
