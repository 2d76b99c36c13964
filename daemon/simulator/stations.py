"""Several stations on one shared database, for tests, benchmarks and trials.

Each station has its own private pcscd + vpcd (:class:`~.stack.PcscStack`), its own
private dbus-daemon (:class:`~.privatebus.PrivateBus`) and its own home folder; all
use one PostgreSQL database (the caller's; the tests and benchmarks start a private one
with ``tests/pgserver.py``). The station's daemon is a real ``tokenstation daemon``
process, started, stopped or killed (SIGKILL) as a crash would; its tokens are
``tokenstation simulate`` processes.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from tokenstation.daemon.simulator.privatebus import PrivateBus, isolated_env, timedated_service
from tokenstation.daemon.simulator.stack import PcscStack


def station_config(
    url: str, key: Path, name: str, *, lease_s: float | None = None, mode: str = "station"
) -> str:
    """The config.toml of a station of the shared database at ``url``."""
    lease = f"lease = {lease_s}\n" if lease_s is not None else ""
    return (
        f'mode = "{mode}"\n[clock]\ntrust = "assume-synchronised"\n'
        f'[store]\nurl = "{url}"\nkey_file = "{key}"\n{lease}'
        f'[station]\nname = "{name}"\n'
    )


def write_config(home: Path, text: str) -> Path:
    """Write ``text`` as the config file of the XDG home ``home``; its path."""
    folder = home / "config" / "tokenstation"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.toml"
    path.write_text(text)
    return path


class SiteParts:
    """One station: its stack, bus, home and (when running) its daemon process."""

    def __init__(
        self, name: str, home: Path, *, stack: PcscStack | None = None, readers: int = 1
    ) -> None:
        self.name = name
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.own_stack = stack is None
        self.stack = stack if stack is not None else PcscStack(readers=readers).start()
        try:
            self.bus = PrivateBus(services=timedated_service()).start()
        except BaseException:
            if self.own_stack:
                self.stack.cleanup()
            raise
        self.env = isolated_env(self.stack.env(), self.bus.address, home)
        self.daemon: subprocess.Popen[bytes] | None = None
        self.log_path = home / "daemon.log"

    def start_daemon(self, *args: str, extra_env: dict[str, str] | None = None) -> None:
        """Start ``tokenstation daemon``; returns once it is ready (RuntimeError if not)."""
        start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.daemon = subprocess.Popen(
                [sys.executable, "-m", "tokenstation.daemon", "daemon", *args],
                env={**self.env, **(extra_env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with self.log_path.open("rb") as f:
                f.seek(start)
                if b"daemon ready" in f.read():
                    return
            if self.daemon.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"the daemon of {self.name} did not start: {self.log_tail()}")

    def wait_log(self, needle: str, timeout: float) -> bool:
        """Whether the daemon's log shows ``needle`` within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log_path.exists() and needle.encode() in self.log_path.read_bytes():
                return True
            if self.daemon is None or self.daemon.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def log_tail(self, n: int = 800) -> str:
        """The end of the daemon's log."""
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path.exists() else ""

    def kill9(self) -> None:
        """SIGKILL the daemon, as a crash or a power cut would."""
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGKILL)
            self.daemon.wait(10)
        self.daemon = None

    def stop_daemon(self) -> None:
        """SIGTERM the daemon and wait."""
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(20)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait(5)
        self.daemon = None

    def token(self, serial: str, *args: str, slot: int = 0) -> subprocess.Popen[bytes]:
        """A simulated token with ``serial`` placed on this station's reader ``slot``."""
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tokenstation.daemon",
                "simulate",
                "--port",
                str(self.stack.port(slot)),
                "--serial",
                serial,
                *args,
            ],
            env=self.stack.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def take_off(self, proc: subprocess.Popen[bytes], serial: str, timeout: float = 15) -> None:
        """Take a token off the reader; with the daemon running, until it has seen it go
        (so that the next token placed there is a new card to it, not the same one)."""
        remove_token(proc)
        if self.daemon is None or self.daemon.poll() is not None:
            return
        gone = f"token {serial} removed".encode()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.log_path.open("rb") as f:
                f.seek(max(0, self.log_path.stat().st_size - 65536))
                if gone in f.read():
                    return
            time.sleep(0.02)
        raise RuntimeError(f"{self.name}'s daemon did not see {serial} go: {self.log_tail()}")

    def close(self) -> None:
        """Stop the daemon, the bus and (when it made it) the stack."""
        self.stop_daemon()
        self.bus.stop()
        if self.own_stack:
            self.stack.cleanup()


def remove_token(proc: subprocess.Popen[bytes]) -> None:
    """Take a simulated token off its reader (SIGTERM) and wait for it to end."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
