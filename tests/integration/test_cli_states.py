"""Every command in each of its states, as a user meets them: exit code, first line of
stderr, --json keys; and the README's table of exit codes says the same.

States: no D-Bus session bus in the environment; a bus with no daemon on it; the daemon
running (empty registry, empty queue); unknown job ids and serials. Reads never create
state: after the no-daemon reads the XDG folders are still absent.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import BusWatcher, DaemonProc, run_cli

README = Path(__file__).resolve().parents[2] / "README.md"
Start = Callable[..., tuple[DaemonProc, BusWatcher]]

ENROLMENT = "otpauth://totp/Bitbucket:alice?secret=JBSWY3DPEHPK3PXP&issuer=Bitbucket"
SAME_SECRET = "otpauth://totp/ACME:bob?secret=JBSWY3DPEHPK3PXP&issuer=ACME"
SETTINGS = ["--algorithm", "sha1", "--period", "30", "--display-timeout", "30"]
FAIL_KEYS = {"ok", "error", "next_step", "exit_code"}


def exit_codes() -> dict[int, str]:
    """The README's "Exit codes" table: code -> meaning."""
    text = README.read_text()
    section = text[text.index("## Exit codes") :]
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", section, flags=re.MULTILINE)
    assert rows, "no exit-code table in README.md"
    return {int(code): meaning for code, meaning in rows}


def code_for(words: str) -> int:
    """The one README code whose meaning contains ``words``."""
    matches = [c for c, meaning in exit_codes().items() if words in meaning]
    assert len(matches) == 1, f"{words!r} should name exactly one README exit code: {matches}"
    return matches[0]


DONE = "done"
BAD_INPUT = "unknown job ids or serials"
NOT_THERE = "no D-Bus bus or no daemon"
NO_TOKEN = "no pcscd, reader or token"
SAFETY = "a secret already queued"


def test_the_readme_table_lists_every_code_the_cli_uses() -> None:
    from tokenstation.daemon.cli import common

    codes = exit_codes()
    used = {getattr(common, name) for name in dir(common) if name.startswith("EXIT_")}
    assert used == set(codes), (used, codes)
    assert code_for(NOT_THERE) == code_for(NO_TOKEN) == common.EXIT_UNAVAILABLE
    assert code_for(BAD_INPUT) == common.EXIT_USAGE
    assert code_for(SAFETY) == common.EXIT_REFUSED


def check(
    proc: subprocess.CompletedProcess[str],
    meaning: str,
    first_line: str,
    json_keys: set[str] | None = None,
) -> dict[str, Any]:
    """Exit code by its README meaning; ``first_line`` in the first line of stderr."""
    assert proc.returncode == code_for(meaning), (proc.returncode, proc.stderr, proc.stdout)
    line = (proc.stderr.splitlines() or [""])[0]
    assert first_line in line, (first_line, proc.stderr)
    if proc.returncode not in (0, 130):
        assert line.startswith("tokenstation: ") and len(proc.stderr.splitlines()) >= 1
    if json_keys is None:
        return {}
    out: dict[str, Any] = json.loads(proc.stdout)
    assert json_keys <= set(out), (json_keys, out)
    if not out.get("ok", True) or proc.returncode:
        assert set(out) >= FAIL_KEYS and out["next_step"], out
        assert out["exit_code"] == proc.returncode
    return out


# -- no D-Bus session bus in this shell --------------------------------------------------


@pytest.fixture
def no_bus(station_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    env = {k: v for k, v in station_env.items() if k != "DBUS_SESSION_BUS_ADDRESS"}

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_cli(env, *args, stdin=stdin)

    return run


NO_BUS = "there is no D-Bus session bus here: DBUS_SESSION_BUS_ADDRESS is not set"


def test_no_bus(no_bus: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    out = check(no_bus("status", "--json"), NOT_THERE, NO_BUS, FAIL_KEYS)
    assert "desktop session" in out["next_step"] and "tokenstation daemon" not in out["next_step"]
    check(no_bus("status"), NOT_THERE, NO_BUS)
    check(no_bus("queue", "list"), NOT_THERE, NO_BUS)
    check(no_bus("queue", "remove", "99", "--json"), NOT_THERE, NO_BUS, FAIL_KEYS)
    check(no_bus("queue", "pause"), NOT_THERE, NO_BUS)
    out = check(no_bus("sync", "--json"), NOT_THERE, NO_BUS, FAIL_KEYS)
    assert "--algorithm, --period and --display-timeout" in out["next_step"]
    check(no_bus("burn", "--secret-file", "/nonexistent/secret"), BAD_INPUT, "no such secret file")
    check(no_bus("daemon"), NOT_THERE, NO_BUS)
    check(no_bus("tray", "--no-icon"), NOT_THERE, NO_BUS)
    # the reader commands do not need a bus: here they find pcscd with empty readers
    check(no_bus("info", "--json"), NO_TOKEN, "no token on any reader", FAIL_KEYS)
    burn = no_bus("burn", "--secret-file", "-", "--yes", stdin="GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
    check(burn, NO_TOKEN, "no token on any reader")


def test_no_bus_reads_the_registry_and_creates_nothing(
    no_bus: Callable[..., subprocess.CompletedProcess[str]], station_env: dict[str, str]
) -> None:
    out = check(no_bus("tokens", "--json"), DONE, "reading the registry file directly", set())
    assert out == {"ok": True, "tokens": [], "via": "registry"}
    proc = no_bus("tokens")
    check(proc, DONE, "reading the registry file directly")
    assert "No token in the registry yet" in proc.stdout
    check(no_bus("tokens", "86596320000001"), BAD_INPUT, "reading the registry file directly")
    assert (
        "token 86596320000001 is not in the registry" in no_bus("tokens", "86596320000001").stderr
    )
    for var in ("XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME"):
        assert not Path(station_env[var]).exists(), f"a read created {station_env[var]}"


# -- a bus, no daemon on it --------------------------------------------------------------

NOT_RUNNING = "the tokenstation daemon is not running on the D-Bus session bus"


def test_no_daemon(
    cli_bus: Callable[..., subprocess.CompletedProcess[str]], station_env: dict[str, str]
) -> None:
    out = check(cli_bus("status", "--json"), NOT_THERE, NOT_RUNNING, FAIL_KEYS)
    assert "systemctl --user start tokenstation" in out["next_step"]
    check(cli_bus("queue", "list", "--json"), NOT_THERE, NOT_RUNNING, FAIL_KEYS)
    check(cli_bus("queue", "retry", "7"), NOT_THERE, NOT_RUNNING)
    out = check(cli_bus("tokens", "--json"), DONE, NOT_RUNNING, {"tokens", "via"})
    assert out["via"] == "registry" and out["tokens"] == []
    # sync says it found no daemon: without the settings it stops there ...
    out = check(cli_bus("sync", "--json"), NOT_THERE, NOT_RUNNING, FAIL_KEYS)
    assert "settings this station wrote" in out["error"]
    # ... with them it goes to the reader directly, saying so (and finds no token there)
    proc = cli_bus("sync", *SETTINGS, "--yes")
    check(proc, NO_TOKEN, "setting the clock directly through the reader")
    assert "no token on any reader" in proc.stderr
    assert not Path(station_env["XDG_STATE_HOME"]).exists()


# -- the daemon, with an empty registry and queue ------------------------------------------


def test_daemon_with_nothing_yet(
    start_daemon: Start, cli_bus: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    start_daemon()
    out = check(cli_bus("status", "--json"), DONE, "", {"ok", "version", "host_clock", "present"})
    assert out["ok"] is True and out["present"] == []
    proc = cli_bus("status")
    check(proc, DONE, "")
    assert proc.stderr == "" and "Readers:    2" in proc.stdout
    out = check(cli_bus("tokens", "--json"), DONE, "", {"ok", "tokens", "via"})
    assert out["via"] == "daemon" and out["tokens"] == []
    proc = cli_bus("queue", "list")
    check(proc, DONE, "")
    assert "No jobs waiting" in proc.stdout
    assert check(cli_bus("queue", "list", "--json"), DONE, "", {"jobs"})["jobs"] == []
    # unknown ids and serials are bad input, not safety refusals
    check(cli_bus("queue", "remove", "99", "--json"), BAD_INPUT, "there is no job 99", FAIL_KEYS)
    check(cli_bus("queue", "retry", "99"), BAD_INPUT, "there is no job 99")
    check(cli_bus("tokens", "86596320000001"), BAD_INPUT, "is not in the registry")
    check(cli_bus("queue", "add", "/nonexistent/qr.png"), BAD_INPUT, "no such file")
    proc = cli_bus("sync", "--yes")
    check(proc, NO_TOKEN, "no token on the daemon's readers")
    proc = cli_bus("queue", "pause")
    check(proc, DONE, "")
    assert "queue resume" in proc.stdout
    check(cli_bus("queue", "resume"), DONE, "")


def test_queue_add_says_what_was_not_queued_and_why(
    start_daemon: Start,
    cli_bus: Callable[..., subprocess.CompletedProcess[str]],
    tmp_path: Path,
) -> None:
    start_daemon()
    first, second = tmp_path / "alice.txt", tmp_path / "bob.txt"
    first.write_text(ENROLMENT + "\n")
    second.write_text(SAME_SECRET + "\n")
    proc = cli_bus("queue", "add", str(first))
    check(proc, DONE, "")
    assert "Queued job 1: Bitbucket:alice" in proc.stdout
    # the same secret under another name: nothing queued, and it says which job holds it
    proc = cli_bus("queue", "add", str(second), "--json")
    out = check(proc, SAFETY, "nothing queued", FAIL_KEYS | {"queued", "not_queued"})
    assert out["queued"] == []
    first_line = proc.stderr.splitlines()[0]
    assert "the secret of ACME:bob is already held by job 1, Bitbucket:alice (queued)" in first_line
    # the very same file again
    check(cli_bus("queue", "add", str(first)), SAFETY, "was taken before")
    # a job that is not queued or failed any more: bad input, with its state
    check(cli_bus("queue", "remove", "1"), DONE, "")
    check(cli_bus("queue", "remove", "1"), BAD_INPUT, "job 1 (Bitbucket:alice) is removed")
    check(cli_bus("queue", "retry", "1"), BAD_INPUT, "only failed jobs can be retried")


# -- the host clock check names what is missing ------------------------------------------


def test_host_clock_reason_names_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, private_bus: str
) -> None:
    import asyncio

    from tokenstation.daemon.clocksync.hostclock import HostClockTrust
    from tokenstation.daemon.simulator.privatebus import PrivateBus

    def reason() -> str:
        async def ask() -> str:
            trust = HostClockTrust(log_changes=False)
            try:
                return (await trust.check()).reason
            finally:
                await trust.close()

        return asyncio.run(ask())

    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/system_bus_socket")
    words = reason()
    assert "no D-Bus system bus here: nothing at /nonexistent/system_bus_socket" in words
    assert "Errno" not in words and 'trust = "assume-synchronised"' in words
    bare = PrivateBus(system=True).start()  # a system bus without systemd-timedated
    try:
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", bare.address)
        words = reason()
    finally:
        bare.stop()
    assert "systemd-timedated (org.freedesktop.timedate1) is not available" in words
