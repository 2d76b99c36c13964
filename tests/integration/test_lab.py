"""`tokenstation lab`: a private station another shell can use, gone after Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import run_cli


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (the daemon, its workers, pcscd; the dbus-daemon forks
    away and is found by its command line: see _lab_processes)."""
    out = subprocess.run(
        ["ps", "-eo", "pid=,ppid="], capture_output=True, text=True, check=False
    ).stdout
    children: dict[int, list[int]] = {}
    for line in out.splitlines():
        p, pp = (int(x) for x in line.split())
        children.setdefault(pp, []).append(p)
    found, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            found.append(c)
            todo.append(c)
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie (an exited child the container's init has not reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "(gone)"


def _lab_processes(marks: list[str]) -> list[str]:
    """Command lines of live processes naming one of the lab's temporary folders."""
    out = subprocess.run(["ps", "-eo", "args="], capture_output=True, text=True, check=False).stdout
    return [line for line in out.splitlines() if any(m in line for m in marks)]


def test_lab_serves_a_second_shell_and_leaves_nothing_after_ctrl_c(tmp_path: Path) -> None:
    lab = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tokenstation.daemon",
            "lab",
            "--token",
            "c302-i:37.4",
            "--token",
            "molto2",
            "--token",
            "fido",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a Ctrl-C of its own, not the test runner's
    )
    lines: list[str] = []
    try:
        assert lab.stdout is not None
        deadline = time.monotonic() + 60
        while not any("Ctrl-C stops everything" in x for x in lines):
            line = lab.stdout.readline()
            assert line and time.monotonic() < deadline, "".join(lines)
            lines.append(line)
        text = "".join(lines)
        env = dict(os.environ)
        for key, value in re.findall(r"^export (\w+)=(.*)$", text, re.M):
            env[key] = shlex.split(value)[0]
        for key in ("PCSCLITE_CSOCK_NAME", "DBUS_SESSION_BUS_ADDRESS", "XDG_STATE_HOME"):
            assert key in env and env[key] != os.environ.get(key), text
        children = _descendants(lab.pid)
        marks = [
            Path(env["PCSCLITE_CSOCK_NAME"]).parent.parent.name,
            Path(env["DBUS_SESSION_BUS_ADDRESS"].split("=", 1)[1]).parent.name,
            Path(env["XDG_STATE_HOME"]).parent.name,
        ]
        assert any("pcscd" in p for p in _lab_processes(marks)), text

        status = run_cli(env, "status", "--json")
        assert status.returncode == 0, status.stdout + status.stderr
        doc = json.loads(status.stdout)
        assert len(doc["readers"]) == 4, doc  # three tokens and a spare reader
        readers = {p["reader"]: p for p in doc["present"]}
        assert "86596320000417" in json.dumps(readers["Virtual PCD 00 00"])
        assert "Molto2" in json.dumps(readers["Virtual PCD 00 01"])
        assert "FIDO" in json.dumps(readers["Virtual PCD 1 00 00"])

        info = run_cli(env, "info", "--reader", "Virtual PCD 00 00")
        assert info.returncode == 0, info.stdout + info.stderr
        assert "86596320000417" in info.stdout and "37.4 s fast" in info.stdout, info.stdout
        profiles = run_cli(env, "profiles", "--json")  # the one Molto2 of three cards
        assert profiles.returncode == 0, profiles.stdout + profiles.stderr
        assert json.loads(profiles.stdout)["reader"] == "Virtual PCD 00 01"
        tokens = run_cli(env, "tokens")
        assert "86596320000417" in tokens.stdout, tokens.stdout + tokens.stderr
    finally:
        lab.send_signal(signal.SIGINT)
        out, _ = lab.communicate(timeout=60)
    assert lab.returncode == 0, out
    assert "tokenstation lab stopped" in out
    alive = {p: _cmdline(p) for p in children if _running(p)}
    assert not alive, f"still running after the lab: {alive}"
    assert not _lab_processes(marks)
    assert not any(m in Path("/proc/mounts").read_text() for m in marks)
    assert not Path(env["XDG_STATE_HOME"]).parent.exists()
