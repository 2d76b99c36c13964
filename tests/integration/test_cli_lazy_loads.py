"""What `scan` and `status` (bus, no daemon) load, and the bus probe behind the latter.

A real private dbus-daemon (tokenstation's PrivateBus), no mocks. Each command runs in a
fresh interpreter as users start it; speed is measured in bench/bench_cli.py, not here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import segno

from tokenstation.daemon.bus import nameprobe
from tokenstation.daemon.bus.names import BUS_NAME
from tokenstation.daemon.qr import zxing
from tokenstation.daemon.simulator.privatebus import PrivateBus

URI = "otpauth://totp/Bitbucket:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Bitbucket"
HARNESS = """
import sys
out = sys.argv.pop(1)
from tokenstation.daemon.cli import main
try:
    code = main()
except SystemExit as exc:
    code = exc.code
with open(out, "w") as f:
    f.write("\\n".join([str(code), *sorted(sys.modules)]))
"""


@pytest.fixture(scope="module")
def bus() -> Iterator[PrivateBus]:
    """A private dbus-daemon on which no tokenstation daemon runs."""
    private = PrivateBus().start()
    try:
        yield private
    finally:
        private.stop()


def run_cli(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[int, str, set[str]]:
    """(exit code, stdout, modules imported) of a fresh `tokenstation ARGS`."""
    out = tmp_path / "modules.txt"
    done = subprocess.run(
        [sys.executable, "-c", HARNESS, str(out), *args],
        env={**env, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    code, *modules = out.read_text().split("\n")
    return int(code), done.stdout, set(modules)


def test_probe_tells_owned_from_unowned_names(bus: PrivateBus) -> None:
    assert nameprobe.name_has_owner(bus.address, BUS_NAME) is False
    assert nameprobe.name_has_owner(bus.address, "org.freedesktop.DBus") is True


@pytest.mark.parametrize(
    "address",
    ["tcp:host=localhost,port=1", "unix:path=/nonexistent/bus", "unix:tmpdir=/tmp", ""],
)
def test_probe_leaves_what_it_cannot_ask_to_the_dbus_library(address: str) -> None:
    assert nameprobe.name_has_owner(address, BUS_NAME) is None


def test_status_with_a_bus_but_no_daemon_says_so_without_asyncio(
    bus: PrivateBus, tmp_path: Path
) -> None:
    env = {**os.environ, "DBUS_SESSION_BUS_ADDRESS": bus.address}
    code, stdout, modules = run_cli(tmp_path, env, "status", "--json")
    assert code == 3
    answer = json.loads(stdout)
    assert answer["error"] == "the tokenstation daemon is not running on the D-Bus session bus"
    assert "systemctl --user start tokenstation" in answer["next_step"]
    assert not {"asyncio", "dbus_fast", "dbus_next"} & {m.split(".")[0] for m in modules}


@pytest.mark.skipif(not zxing.AVAILABLE, reason="zxing-cpp is not installed")
def test_scan_read_by_zxing_loads_neither_zbar_nor_metadata(tmp_path: Path) -> None:
    image = tmp_path / "one.png"
    segno.make(URI, error="m").save(str(image), scale=6, border=4)
    env = {k: v for k, v in os.environ.items() if k != "DBUS_SESSION_BUS_ADDRESS"}
    code, stdout, modules = run_cli(tmp_path, env, "scan", str(image), "--json")
    assert code == 0
    [account] = json.loads(stdout)["files"][0]["accounts"]
    assert (account["issuer"], account["account"]) == ("Bitbucket", "alice")
    assert not {"pyzbar", "importlib.metadata"} & (modules | {m.split(".")[0] for m in modules})
    # Nor what only other files or other commands need: the export parser, CSV, pyotp,
    # OpenSSL's hashlib, dataclasses (with inspect), Pillow's plugins for other formats,
    # and argparse (a plain `scan FILE... --json` is read without it).
    unneeded = {"tokenstation.daemon.intake.migration", "csv", "pyotp", "_hashlib"}
    unneeded |= {"dataclasses", "inspect", "PIL.JpegImagePlugin", "PIL.GifImagePlugin", "argparse"}
    assert not unneeded & modules
