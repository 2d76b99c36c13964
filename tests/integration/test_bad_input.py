"""Every command, given bad input, answers with a sentence and the README's exit code:
no traceback, no "unexpected error", no exception class name (issue: the first hour).

The commands run as a user starts them (`tokenstation ...` subprocesses) with private
folders, no daemon, no D-Bus bus and no pcscd, so each case meets its refusal before
anything else. A new command needs a row here (test_every_command_has_a_case)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tokenstation.daemon.cli.commands import COMMANDS

USAGE, FAILED, UNAVAILABLE, REFUSED = 2, 1, 3, 4
EXCEPTION_NAME = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception|Warning)\b|\bSharedFolder\b")

# (command words, expected exit code, words the first line must hold). "{t}" is a folder
# with fixtures: missing (absent), adir/ (a folder), bad.toml, badval.toml, broken.toml,
# uri.txt (an otpauth URI), code.png (not text), key.key (an existing key file).
CASES: list[tuple[list[str], int, str]] = [
    (["info", "--reader", "nope"], UNAVAILABLE, "pcscd"),
    (["sync", "--period", "45"], USAGE, "invalid choice"),
    (["burn", "--secret-file", "{t}/missing"], USAGE, "no such secret file"),
    (["burn", "--secret-file", "{t}/adir"], USAGE, "it is a folder"),
    (["burn", "--secret-file", "{t}/uri.txt"], USAGE, "holds an otpauth:// URI"),
    (["burn", "--uri-file", "{t}/code.png"], USAGE, "is an image"),
    (["profiles", "--reader", "nope"], UNAVAILABLE, "pcscd"),
    (["delete", "--profile", "500"], USAGE, "profiles 0 to 99"),
    (["molto2", "change-key", "--new-key-file", "{t}/missing"], USAGE, "no such key file"),
    (["daemon", "--config", "{t}/bad.toml"], USAGE, "unknown key"),
    (["daemon", "--config", "{t}/badval.toml"], USAGE, "positive number of seconds"),
    (["daemon", "--config", "{t}/broken.toml"], USAGE, "not valid TOML"),
    (["daemon", "--config", "{t}/missing"], USAGE, "no configuration file"),
    (["status", "--bus", "nowhere"], USAGE, "invalid choice"),
    (["tokens", "--plot", "1", "{t}/x.jpg"], USAGE, ".png or .svg"),
    (["tokens", "--plot", "1", "{t}/missing/x.png"], USAGE, "no folder"),
    (["scan", "{t}/missing"], USAGE, "no such file"),
    (["queue", "add", "{t}/missing"], USAGE, "no such file"),
    (["queue", "remove", "abc"], USAGE, "invalid int value"),
    (["queue", "generate", "--assign", "{t}/missing"], USAGE, "cannot be read"),
    (["store", "migrate", "--store", "mysql://x"], USAGE, "PostgreSQL connection URL"),
    (["store", "migrate", "--store", "postgresql://a b"], USAGE, "URL is malformed"),
    (["daemon", "--store", "postgresql://u:pw@h:port/db"], USAGE, "URL is malformed"),
    (["store", "init-key", "--key-file", "{t}/key.key"], REFUSED, "exists already"),
    (["tray", "--bus", "nowhere"], USAGE, "invalid choice"),
    (["install-user-service", "--bogus"], USAGE, "unrecognized arguments"),
    (["uninstall-user-service", "--bogus"], USAGE, "unrecognized arguments"),
    (["simulate", "--port", "99999"], USAGE, "no TCP port"),
    (
        [
            *("simulate", "--model", "molto2", "--profiles", "50"),
            *("--profile-seed", "60:JBSWY3DPEHPK3PXP", "--port", "1"),
        ],
        USAGE,
        "profiles 0 to 49",
    ),
    (["demo", "--offset", "abc"], USAGE, "invalid float value"),
    (["lab", "--token", "nonsense"], USAGE, "no token kind"),
    (["export", "--format", "nope", "--out", "x"], USAGE, "invalid choice"),
    (
        ["export", "--format", "pskc", "--out", "{t}/x", "--psk-file", "{t}/missing"],
        USAGE,
        "does not exist",
    ),
]


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    t = tmp_path_factory.mktemp("bad")
    (t / "adir").mkdir()
    (t / "bad.toml").write_text("bogus = 1\n")
    (t / "badval.toml").write_text('[drift]\nthreshold = "x"\n')
    (t / "broken.toml").write_text("not toml [[[")
    (t / "uri.txt").write_text("otpauth://totp/A:b?secret=JBSWY3DPEHPK3PXP")
    (t / "code.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (t / "key.key").write_text("an existing key\n")
    (t / "home").mkdir()
    return t


def run(t: Path, words: list[str]) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(t / "home"),
        "XDG_RUNTIME_DIR": str(t / "run"),
        "PCSCLITE_CSOCK_NAME": str(t / "no-pcscd"),
        "LANG": "C.UTF-8",
    }
    args = [w.replace("{t}", str(t)) for w in words]
    return subprocess.run(
        [sys.executable, "-m", "tokenstation.daemon", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.mark.parametrize(("words", "code", "says"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_is_a_sentence(fixtures: Path, words: list[str], code: int, says: str) -> None:
    done = run(fixtures, words)
    err = done.stderr + done.stdout  # `scan` reports a file's verdict on stdout
    assert done.returncode == code, err
    assert says in err, err
    assert "Traceback" not in err and "unexpected error" not in err, err
    assert not EXCEPTION_NAME.search(err), err


def test_every_command_has_a_case() -> None:
    covered = {words[0] for words, _code, _says in CASES}
    assert set(COMMANDS) <= covered, f"no bad-input case for {sorted(set(COMMANDS) - covered)}"
