"""Start-up of the `tokenstation` command: what `--help` and the quick reads load.

Each case runs in a fresh interpreter (the CLI as users start it) and lists the modules
it imported: `--help` loads no command module, no asyncio, no D-Bus library and no
importlib.metadata; `status` without a bus answers without asyncio or D-Bus. Speed
itself is measured in bench/bench_cli.py (BENCHMARKS.md), not asserted here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

HEAVY = ("asyncio", "dbus_next", "dbus_fast", "importlib.metadata", "logging", "sqlite3")
HARNESS = """
import sys
out = sys.argv.pop(1)
from tokenstation.daemon.cli import main
try:
    main()
except SystemExit:
    pass
with open(out, "w") as f:
    f.write("\\n".join(sorted(sys.modules)))
"""


def loaded(tmp_path: Path, *args: str) -> set[str]:
    """The modules a fresh `tokenstation ARGS` imported (no session bus, private HOME)."""
    env = {k: v for k, v in os.environ.items() if k != "DBUS_SESSION_BUS_ADDRESS"}
    env["HOME"] = str(tmp_path)
    for var in ("XDG_STATE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        env.pop(var, None)
    out = tmp_path / "modules.txt"
    subprocess.run(
        [sys.executable, "-c", HARNESS, str(out), *args],
        env=env,
        capture_output=True,
        check=False,
        timeout=60,
    )
    return set(out.read_text().split("\n"))


def test_help_loads_no_command_module_asyncio_or_dbus(tmp_path: Path) -> None:
    modules = loaded(tmp_path, "--help")
    assert not [m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY]
    commands = {m for m in modules if m.startswith("tokenstation.daemon.cli.")}
    # The command table and the argparse classes; no command's module.
    assert commands == {"tokenstation.daemon.cli.commands", "tokenstation.daemon.cli.parsers"}


@pytest.mark.parametrize(
    ("args", "needed"),
    [
        (["status", "--json"], ()),
        (["queue", "list"], ()),
        (["--version"], ()),
        (["tokens", "--json"], ("logging",)),  # reads the configuration (which logs)
    ],
)
def test_quick_answers_without_a_bus_load_no_asyncio_or_dbus(
    tmp_path: Path, args: list[str], needed: tuple[str, ...]
) -> None:
    modules = loaded(tmp_path, *args)
    heavy = set(HEAVY) - set(needed)
    assert not [m for m in modules if m.split(".")[0] in heavy or m in heavy], args
    assert "tokenstation.daemon.bus.client" not in modules


def test_a_command_loads_only_its_own_module(tmp_path: Path) -> None:
    modules = loaded(tmp_path, "scan", "--help")
    commands = {m for m in modules if m.startswith("tokenstation.daemon.cli.")}
    assert "tokenstation.daemon.cli.scan" in commands
    assert not commands & {
        "tokenstation.daemon.cli.token_cmds",
        "tokenstation.daemon.cli.demo",
        "tokenstation.daemon.cli.simulate",
        "tokenstation.daemon.cli.queue_cmds",
    }


#: The measured quick reads (bench/bench_cli.py): what start-up tricks may serve.
QUICK_READS = (
    ["--help"],
    ["--version"],
    ["status", "--json"],
    ["queue", "list"],
    ["tokens", "--json"],
    ["scan", "QR"],
)


def test_start_up_tricks_are_only_on_the_quick_reads(tmp_path: Path) -> None:
    """``TYPE_CHECKING = False`` (saving the import of typing) is kept to the modules the
    quick reads load: anywhere else it is a trick nobody waits for."""
    import segno

    image = tmp_path / "qr.png"
    segno.make_qr("otpauth://totp/Quick?secret=JBSWY3DPEHPK3PXP").save(image, scale=4)
    quick: set[str] = set()
    for args in QUICK_READS:
        quick |= loaded(tmp_path, *[str(image) if a == "QR" else a for a in args])
    package = Path(__file__).resolve().parents[3]
    tricks = {
        "tokenstation."
        + ".".join(path.relative_to(package).with_suffix("").parts).removesuffix(".__init__")
        for folder in ("daemon", "tray")
        for path in (package / folder).rglob("*.py")
        if "TYPE_CHECKING = False" in path.read_text()
    }
    assert "tokenstation.daemon.cli.quick" in tricks & quick  # the check sees them
    assert sorted(tricks - quick) == []


def test_version_without_metadata_matches_the_installed_one_and_the_debian_changelog() -> None:
    from tokenstation.daemon import __version__

    assert __version__ == metadata.version("tokenstation")
    root = Path(__file__).resolve().parents[3]
    changelog = (root / "debian" / "changelog").read_text().splitlines()[0]
    assert changelog.startswith(f"tokenstation ({__version__})"), changelog


def test_every_command_in_the_table_has_a_parser() -> None:
    from tokenstation.daemon.cli import build_parser
    from tokenstation.daemon.cli.commands import COMMANDS

    parser = build_parser("*")
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)  # type: ignore[arg-type]


@pytest.mark.parametrize("plain", [["status"], ["status", "--json"]])
def test_plain_status_is_read_without_argparse_and_answers_as_the_parser_would(
    tmp_path: Path, plain: list[str]
) -> None:
    assert "argparse" not in loaded(tmp_path, *plain)
    # The same words spelled so that argparse reads them ("--bus session" is the default).
    env = {k: v for k, v in os.environ.items() if k != "DBUS_SESSION_BUS_ADDRESS"}
    env["HOME"] = str(tmp_path)
    runs = [
        subprocess.run(
            [sys.executable, "-m", "tokenstation.daemon", *words],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        for words in (plain, [*plain, "--bus", "session"])
    ]
    assert "argparse" in loaded(tmp_path, *plain, "--bus", "session")
    assert runs[0].returncode == runs[1].returncode == 3  # no bus: not there
    assert runs[0].stdout == runs[1].stdout and runs[0].stderr == runs[1].stderr
    assert "D-Bus" in runs[0].stdout + runs[0].stderr
