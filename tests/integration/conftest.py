"""The real PC/SC stack for integration tests: a private pcscd + vpcd, simulators as processes.

Nothing here is mocked: pcscd is Debian's, the reader driver is vsmartcard's vpcd,
the token is `tokenstation simulate` in its own process, and the commands under test
run as `python -m tokenstation.daemon` with PCSCLITE_CSOCK_NAME pointing at the
private socket. Without pcscd/vpcd the tests are skipped, except under CI=true where
a missing stack is a failure.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tokenstation.daemon.simulator.privatebus import PrivateBus, isolated_env, timedated_service
from tokenstation.daemon.simulator.stack import PcscStack, StackUnavailable, missing_parts

# -- no secret in any output --------------------------------------------------------------

#: Every output of the run: CLI stdout/stderr, daemon logs, D-Bus signals and replies,
#: simulator output. Scanned for the test secrets when the session ends.
TRANSCRIPT: list[tuple[str, str]] = []

#: The secrets the integration tests put into files, URIs, flags and simulators.
TEST_SECRETS: list[bytes] = [
    base64.b32decode("JBSWY3DPEHPK3PXP"),
    b"12345678901234567890",
    *(f"tokenstation-test-{i:05d}".encode() for i in range(200)),
]


def secret_forms(raw: bytes) -> set[str]:
    """How a secret could show up in text."""
    b32 = base64.b32encode(raw).decode()
    forms = {b32, b32.rstrip("="), b32.lower().rstrip("="), raw.hex(), raw.hex().upper()}
    forms.add(base64.b64encode(raw).decode().rstrip("="))
    if raw.isascii() and raw.decode().isprintable() and len(raw) >= 8:
        forms.add(raw.decode())
    return forms


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_output() -> Iterator[None]:
    yield
    forms = {f: raw for raw in TEST_SECRETS for f in secret_forms(raw)}
    leaks = [f"{source}: {form!r}" for source, text in TRANSCRIPT for form in forms if form in text]
    assert not leaks, "secrets found in outputs: " + "; ".join(leaks[:10])


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
        self.stopped = False
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
        if self.stopped:
            return ""
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        out = self.proc.stdout.read() if self.proc.stdout else ""
        TRANSCRIPT.append((f"simulator {self.reader}", out))
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


def run_cli(
    env: dict[str, str], *args: str, timeout: float = 30.0, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m tokenstation.daemon ARGS` with ``env``, output captured; ``stdin`` is fed
    to it (none when None)."""
    done = subprocess.run(
        [sys.executable, "-m", "tokenstation.daemon", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        check=False,
    )
    TRANSCRIPT.append((f"tokenstation {args[0] if args else ''}", done.stdout + done.stderr))
    return done


@pytest.fixture
def cli(pcsc_stack: PcscStack, tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """The CLI on the private pcscd; its registry and log (direct writes record there)
    in private XDG folders, never the host's."""
    home = tmp_path / "cli-home"
    env = {
        **pcsc_stack.env(),
        **{f"XDG_{k}_HOME": str(home / k.lower()) for k in ("CONFIG", "STATE", "DATA", "CACHE")},
    }
    return functools.partial(run_cli, env)


# -- a private D-Bus and the daemon -------------------------------------------------------


@pytest.fixture(scope="session")
def private_bus() -> Iterator[str]:
    """A private dbus-daemon serving as both session and system bus.

    Its only activatable service is the real systemd-timedated, so the daemon's
    host-clock check talks to the real thing (which reports this machine's clock
    as not synchronised).
    """
    if shutil.which("dbus-daemon") is None:
        if os.environ.get("CI"):
            pytest.fail("dbus-daemon missing under CI")
        pytest.skip("dbus-daemon not installed")
    bus = PrivateBus(services=timedated_service()).start()
    yield bus.address
    bus.stop()


def bus_env(stack: PcscStack, address: str, home: Path) -> dict[str, str]:
    """Environment for daemon and CLI processes: private pcscd, private bus, private XDG."""
    return isolated_env(stack.env(), address, home)


class BusWatcher:
    """A D-Bus client on a background loop: collects station signals, makes calls."""

    def __init__(self, address: str) -> None:
        from tokenstation.daemon.bus.client import StationClient

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.signals: list[tuple[float, str, dict[str, Any]]] = []
        self._lock = threading.Lock()

        async def setup() -> StationClient:
            client = await StationClient.connect("session", address, require=False)
            await client.subscribe(self._on_signal)
            return client

        self.client = self.run(setup())

    def _on_signal(self, name: str, payload: dict[str, Any]) -> None:
        TRANSCRIPT.append((f"D-Bus signal {name}", json.dumps(payload, default=str)))
        with self._lock:
            self.signals.append((time.time(), name, payload))

    def run(self, coro: Any, timeout: float = 20.0) -> Any:
        try:
            result = asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)
        except Exception as exc:
            TRANSCRIPT.append(("D-Bus error reply", str(exc)))
            raise
        TRANSCRIPT.append(("D-Bus reply", json.dumps(result, default=str)))
        return result

    def names(self) -> list[str]:
        with self._lock:
            return [name for _t, name, _p in self.signals]

    def expect(self, name: str, timeout: float = 8.0, **match: Any) -> dict[str, Any]:
        """The first signal ``name`` whose payload matches ``match`` (waits for it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for _t, n, payload in self.signals:
                    if n == name and all(payload.get(k) == v for k, v in match.items()):
                        return payload
            time.sleep(0.02)
        raise AssertionError(f"no {name} {match} within {timeout} s; got {self.names()}")

    def count(self, name: str, **match: Any) -> int:
        with self._lock:
            return sum(
                1
                for _t, n, p in self.signals
                if n == name and all(p.get(k) == v for k, v in match.items())
            )

    def close(self) -> None:
        self.run(self.client.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class DaemonProc:
    """`tokenstation daemon` as a subprocess on the private bus and pcscd."""

    def __init__(
        self, env: dict[str, str], args: list[str], log_path: Path, as_user: list[str] | None = None
    ) -> None:
        """``as_user``: a command prefix that runs the daemon as another user (setpriv ...)."""
        self.env = env
        self.log_path = log_path
        self.log = log_path.open("w")
        self.proc = subprocess.Popen(
            [
                *(as_user or []),
                sys.executable,
                "-m",
                "tokenstation.daemon",
                "daemon",
                "--log-level",
                "debug",
                *args,
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        wait_until(lambda: "daemon ready" in self.output() or self.proc.poll() is not None, 15.0)
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited early:\n{self.output()}")

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text()

    def kill9(self) -> None:
        """SIGKILL, as a crash or power loss would."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(5)
        self.stop()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if not self.log.closed:
            self.log.close()
        TRANSCRIPT.append((f"daemon log {self.log_path.name}", self.log_path.read_text()))
        return self.proc.returncode


@pytest.fixture
def station_env(pcsc_stack: PcscStack, private_bus: str, tmp_path: Path) -> dict[str, str]:
    return bus_env(pcsc_stack, private_bus, tmp_path / "home")


@pytest.fixture
def start_daemon(
    station_env: dict[str, str], private_bus: str, tmp_path: Path
) -> Iterator[Callable[..., tuple[DaemonProc, BusWatcher]]]:
    """Start a daemon (flags, optional TOML config) and a signal watcher for it."""
    started: list[tuple[DaemonProc, BusWatcher]] = []

    def start(*args: str, config: str | None = None) -> tuple[DaemonProc, BusWatcher]:
        flags = list(args)
        if config is not None:
            path = tmp_path / f"config{len(started)}.toml"
            path.write_text(config)
            flags += ["--config", str(path)]
        watcher = BusWatcher(private_bus)
        daemon = DaemonProc(station_env, flags, tmp_path / f"daemon{len(started)}.log")
        started.append((daemon, watcher))
        return daemon, watcher

    yield start
    for daemon, watcher in started:
        daemon.stop()
        watcher.close()


@pytest.fixture
def cli_bus(station_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the CLI against the private bus and pcscd."""
    return functools.partial(run_cli, station_env)
