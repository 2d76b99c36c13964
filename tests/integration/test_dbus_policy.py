"""The system-bus policy in packaging/dbus, loaded by a real dbus-daemon.

The shipped file names the user and group `tokenstation`; here they become root
(who runs the daemon in the test) and `users`, and clients run as `nobody` with and
without that group (setpriv). Needs root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tokenstation.daemon.simulator.privatebus import PrivateBus

from conftest import DaemonProc, wait_until

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


def monitor(address: str, groups: str | None, out: Path) -> subprocess.Popen[bytes]:
    """dbus-monitor as `nobody` (with ``groups``), subscribed to the daemon's signals
    as any client would be (a subscriber, not a privileged monitor)."""
    who = ["setpriv", "--reuid=nobody", "--regid=nogroup"]
    who += [f"--groups={groups}"] if groups else ["--clear-groups"]
    rule = f"type='signal',interface='{IFACE}'"
    return subprocess.Popen(
        [*who, "dbus-monitor", "--address", address, rule],
        stdout=out.open("wb"),
        stderr=subprocess.STDOUT,
    )


def members(path: Path) -> set[str]:
    """The signal members a monitor's output shows."""
    import re

    return set(re.findall(r"member=(\w+)", path.read_text(errors="replace")))


#: What carries jobs (labels, source file names, seed fingerprints): members only.
PRIVATE_SIGNALS = {"FileTaken", "BurnOffered", "BurnDone", "BurnFailed"}


def test_job_signals_reach_only_the_group_and_counts_reach_everyone(
    system_bus: str, station_env: dict[str, str], simulator: Any, tmp_path: Path
) -> None:
    """A `nobody` subscriber sees tokens come and go and the queue's length (what
    GetStatus tells anyone) but no FileTaken, BurnOffered or BurnDone; a member sees
    them all. On the shipped policy, on a real system-bus dbus-daemon."""
    if not shutil.which("dbus-monitor"):
        pytest.fail("dbus-monitor is part of dbus; it should be installed")
    env = {**station_env, "DBUS_SYSTEM_BUS_ADDRESS": system_bus}
    daemon = DaemonProc(env, ["--bus", "system"], tmp_path / "daemon.log")
    outsider_out, member_out = tmp_path / "outsider.txt", tmp_path / "member.txt"
    watchers = [monitor(system_bus, None, outsider_out), monitor(system_bus, "users", member_out)]
    try:
        time.sleep(1.0)  # both subscribed
        drop = Path(env["XDG_DATA_HOME"]) / "tokenstation" / "drop"
        staged = tmp_path / "alice.txt"
        staged.write_text("otpauth://totp/Acme:alice?secret=JBSWY3DPEHPK3PXP&issuer=Acme\n")
        shutil.move(staged, drop / "alice.txt")
        sim = simulator()
        wait_until(lambda: "BurnOffered" in members(member_out), 20.0, "the offer")
        serial = str(sim.state()["serial"])
        burn = busctl(system_bus, "BurnJob", "us", "1", serial, groups="users")
        assert burn.returncode == 0, burn.stderr
        time.sleep(1.5)  # the signals delivered
    finally:
        for w in watchers:
            w.terminate()
            w.wait(5)
        assert daemon.stop() == 0
    seen_by_member, seen_by_outsider = members(member_out), members(outsider_out)
    assert PRIVATE_SIGNALS - {"BurnFailed"} <= seen_by_member, seen_by_member
    assert {"TokenPresented", "QueueState"} <= seen_by_outsider, seen_by_outsider
    assert not seen_by_outsider & PRIVATE_SIGNALS, seen_by_outsider
    assert "alice" not in outsider_out.read_text(errors="replace")


#: Methods anyone may call (the policy's default context): status and token views.
PUBLIC_METHODS = {"GetStatus", "ListPresent", "ListTokens", "GetToken"}


def test_every_method_is_public_or_denied_to_outsiders_and_open_to_members(
    system_bus: str, station_env: dict[str, str], tmp_path: Path
) -> None:
    """Each method the daemon exports, called as `nobody` (no arguments: the answer's
    kind is what counts) is refused by the bus unless it is public, and never refused
    to a member; the public list is the policy's."""
    env = {**station_env, "DBUS_SYSTEM_BUS_ADDRESS": system_bus}
    daemon = DaemonProc(env, ["--bus", "system"], tmp_path / "daemon.log")
    try:
        shown = subprocess.run(
            [*NOBODY, "busctl", f"--address={system_bus}", "introspect", *DEST, IFACE],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
        methods = {
            line.split()[0].lstrip(".")
            for line in shown.splitlines()
            if len(line.split()) > 1 and line.split()[1] == "method"
        }
        assert len(methods) >= 16 and methods >= PUBLIC_METHODS, methods
        for method in sorted(methods):
            outsider = busctl(system_bus, method, groups=None)
            denied = "access denied" in outsider.stderr.lower()
            assert denied == (method not in PUBLIC_METHODS), (method, outsider.stderr)
            member = busctl(system_bus, method, groups="users")
            assert "access denied" not in member.stderr.lower(), (method, member.stderr)
    finally:
        assert daemon.stop() == 0


PEER = Path(__file__).with_name("signal_peer.py")


def policy_denied_signals() -> set[str]:
    """The signals the shipped policy's default context denies (members only)."""
    import xml.etree.ElementTree as ET

    default = next(
        p for p in ET.parse(POLICY).getroot().iter("policy") if p.get("context") == "default"
    )
    return {
        str(rule.get("receive_member"))
        for rule in default.iter("deny")
        if rule.get("receive_interface") == IFACE and rule.get("receive_type") == "signal"
    }


def test_every_signal_reaches_a_member_and_only_the_public_ones_reach_others(
    system_bus: str,
) -> None:
    """Every signal of the interface, each sent once by the owner of the station's bus
    name: a `nobody` subscriber receives exactly the public ones (none that carries a
    job), a member of the group receives them all, in order. No waiting on time: each
    subscriber says when it is subscribed, and a last public signal ends both."""
    from tokenstation.daemon.events import SIGNALS

    every = sorted(SIGNALS.values())
    listeners = {
        groups: subprocess.Popen(
            [
                *["setpriv", "--reuid=nobody", "--regid=nogroup"],
                *([f"--groups={groups}"] if groups else ["--clear-groups"]),
                sys.executable,
                str(PEER),
                "listen",
                system_bus,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for groups in ("", "users")
    }
    try:
        for proc in listeners.values():
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        subprocess.run(
            [sys.executable, str(PEER), "emit", system_bus, *every], check=True, timeout=30
        )
        got: dict[str, list[str]] = {}
        for groups, proc in listeners.items():
            out, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err
            got[groups] = json.loads(out)
    finally:
        for proc in listeners.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    private = policy_denied_signals()
    assert private >= PRIVATE_SIGNALS
    assert got["users"] == every
    assert got[""] == [s for s in every if s not in private]
    assert not set(got[""]) & PRIVATE_SIGNALS


def test_every_property_is_readable_by_anyone(
    system_bus: str, station_env: dict[str, str], tmp_path: Path
) -> None:
    """The properties hold what GetStatus and ListPresent tell anyone (tokens, readers,
    the queue's count): Get as `nobody` answers, Set is refused (all are read-only)."""
    env = {**station_env, "DBUS_SYSTEM_BUS_ADDRESS": system_bus}
    daemon = DaemonProc(env, ["--bus", "system"], tmp_path / "daemon.log")
    try:
        for prop in ("Version", "Readers", "Present", "QueueLength", "Paused"):
            got = subprocess.run(
                [*NOBODY, "busctl", f"--address={system_bus}", "get-property", *DEST, IFACE, prop],
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
            assert got.returncode == 0, (prop, got.stderr)
        paused = subprocess.run(
            [*NOBODY, "busctl", f"--address={system_bus}", "set-property", *DEST, IFACE,
             "Paused", "b", "true"],
            capture_output=True, text=True, timeout=20, check=False,
        )  # fmt: skip
        assert "access denied" in paused.stderr.lower(), paused.stderr
    finally:
        assert daemon.stop() == 0
