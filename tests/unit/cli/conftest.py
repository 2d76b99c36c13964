"""Running the command line under a pseudo-terminal (standard error a terminal, as a
person at a console has it) or with its output in pipes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Run:
    """A finished command: exit code, standard output, standard error (as text)."""

    returncode: int
    stdout: str
    stderr: str


def run_cli(env: dict[str, str], *args: str, tty: bool, timeout: float = 60.0) -> Run:
    """`python -m tokenstation.daemon ARGS`; ``tty``: standard error is a pseudo-terminal
    (standard output stays a pipe), else both are pipes."""
    argv = [sys.executable, "-m", "tokenstation.daemon", *args]
    if not tty:
        done = subprocess.run(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Run(done.returncode, done.stdout, done.stderr)
    master, slave = os.openpty()
    seen: list[bytes] = []

    def drain() -> None:  # the terminal's side: read until the last writer is gone
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the command has exited
                return
            if not chunk:
                return
            seen.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave
        )
        os.close(slave)
        out, _ = proc.communicate(timeout=timeout)
        reader.join(10)
    finally:
        os.close(master)
    return Run(proc.returncode, out.decode(), b"".join(seen).decode())


def progress_lines(terminal_text: str, what: str) -> list[str]:
    """The lines ``what`` drew on the terminal, each redraw (after a carriage return) its
    own line, trailing blanks cut."""
    pieces = terminal_text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return [p.rstrip() for p in pieces if p.startswith(what + ":")]


@pytest.fixture
def cli_run() -> Callable[..., Run]:
    """:func:`run_cli`."""
    return run_cli


@pytest.fixture
def drawn() -> Callable[[str, str], list[str]]:
    """:func:`progress_lines`."""
    return progress_lines
