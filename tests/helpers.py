"""Test doubles shared by the unit tests: a virtual clock and a direct card connection.

The connection talks to the real simulator in-process (no PC/SC): it is the
simulator, not a mock, that answers; only the transport is skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from tokenstation.daemon.simulator.token import SimulatedToken
from tokenstation.daemon.token.errors import CardLost


class VirtualClock:
    """Host time that moves only when slept on or when an APDU is exchanged."""

    def __init__(self, start: float = 1_800_000_000.25) -> None:
        self.now = start

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.now += seconds


class DirectConnection:
    """Hands APDUs to a simulated token; each exchange costs ``rtt`` of virtual time."""

    def __init__(self, token: SimulatedToken, clock: VirtualClock, rtt: float = 0.0004) -> None:
        self.token = token
        self.clock = clock
        self.rtt = rtt
        self.sent: list[bytes] = []
        self.redacted: list[bool] = []

    def transmit(self, apdu: bytes, *, redact: bool = False) -> bytes:
        self.clock.now += self.rtt / 2
        self.sent.append(apdu)
        self.redacted.append(redact)
        reply = self.token.process(apdu)
        self.clock.now += self.rtt / 2
        if reply is None:
            raise CardLost("the card left the field")
        return reply

    def instructions(self) -> list[int]:
        """INS byte of each APDU sent, in order."""
        return [a[1] for a in self.sent]


def cli_on_pty(env: dict[str, str], *args: str, timeout: float = 60.0) -> tuple[int, str, str]:
    """`python -m tokenstation.daemon ARGS` with standard error on a pseudo-terminal (as
    a person's shell has it) and standard output a pipe: exit code, stdout, and the text
    the terminal received."""
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
            [sys.executable, "-m", "tokenstation.daemon", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=slave,
        )
        os.close(slave)
        out, _ = proc.communicate(timeout=timeout)
        reader.join(10)
    finally:
        os.close(master)
    return proc.returncode, out.decode(), b"".join(seen).decode()
