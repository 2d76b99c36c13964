"""The real PC/SC stack for integration tests: a private pcscd + vpcd, simulators as processes.

Nothing here is mocked: pcscd is Debian's, the reader driver is vsmartcard's vpcd,
the token is `tokenstation simulate` in its own process, and the commands under test
run as `python -m tokenstation.daemon` with PCSCLITE_CSOCK_NAME pointing at the
private socket. Without pcscd/vpcd the tests are skipped, except under CI=true where
a missing stack is a failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tokenstation.daemon.simulator.stack import PcscStack, StackUnavailable, missing_parts


@pytest.fixture(scope="session")
def pcsc_stack() -> Iterator[PcscStack]:
    missing = missing_parts()
    if missing:
        if os.environ.get("CI"):
            pytest.fail("PC/SC test stack missing under CI: " + ", ".join(missing))
        pytest.skip("PC/SC test stack not installed: " + ", ".join(missing))
    try:
        stack = PcscStack(readers=2).start()
    except StackUnavailable as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
    # Before this process makes its first PC/SC call: libpcsclite reads it once.
    os.environ["PCSCLITE_CSOCK_NAME"] = str(stack.socket_path)
    yield stack
    stack.cleanup()


def card_present(reader: str) -> bool:
    from tokenstation.daemon import pcsc

    try:
        return reader in pcsc.readers_with_card()[1]
    except Exception:
        return False


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")


class SimToken:
    """A `tokenstation simulate` process in one vpcd slot."""

    def __init__(self, stack: PcscStack, slot: int, state_file: Path, args: list[str]) -> None:
        self.stack = stack
        self.slot = slot
        self.reader = stack.reader_name(slot)
        self.state_file = state_file
        cmd = [
            sys.executable,
            "-m",
            "tokenstation.daemon",
            "simulate",
            "--port",
            str(stack.port(slot)),
            "--state-file",
            str(state_file),
            *args,
        ]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=stack.env(), text=True
        )
        wait_until(
            lambda: state_file.exists() and card_present(self.reader),
            8.0,
            f"simulated token on {self.reader}",
        )

    def state(self) -> dict[str, Any]:
        return json.loads(self.state_file.read_text())  # type: ignore[no-any-return]

    def fresh_state(self) -> dict[str, Any]:
        """A state written after now (the runner rewrites it every 0.1 s)."""
        t = time.time()
        wait_until(lambda: self.state()["host_time"] > t + 0.01, 3.0, "fresh simulator state")
        return self.state()

    def power_cycle(self) -> None:
        self.proc.send_signal(signal.SIGUSR1)
        wait_until(lambda: not card_present(self.reader), 5.0, "token off the reader")
        wait_until(lambda: card_present(self.reader), 5.0, "token back after power cycle")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        out = self.proc.stdout.read() if self.proc.stdout else ""
        wait_until(lambda: not card_present(self.reader), 5.0, "reader empty again")
        return out


@pytest.fixture
def simulator(pcsc_stack: PcscStack, tmp_path: Path) -> Iterator[Callable[..., SimToken]]:
    started: list[SimToken] = []

    def start(*args: str, slot: int = 0) -> SimToken:
        sim = SimToken(pcsc_stack, slot, tmp_path / f"sim{slot}-{len(started)}.json", list(args))
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def cli(pcsc_stack: PcscStack) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tokenstation.daemon", *args],
            env=pcsc_stack.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    return run
