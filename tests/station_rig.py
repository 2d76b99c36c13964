"""The station and its features (clock sync, the provisioner) on the in-process
simulator (no PC/SC, no D-Bus).

The host-clock trust source is the one stand-in here (a fixed answer); the integration
tests ask the real systemd-timedated.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tokenstation.daemon.clocksync.policy import ClockTrust
from tokenstation.daemon.clocksync.sync import ClockSync
from tokenstation.daemon.config import Config
from tokenstation.daemon.events import Event, JobState, ReaderChange
from tokenstation.daemon.pcsc import ReaderEvent
from tokenstation.daemon.provisioning.provisioner import Provisioner
from tokenstation.daemon.provisioning.queue import JobQueue
from tokenstation.daemon.registry.store import Store
from tokenstation.daemon.simulator.token import SimulatedToken
from tokenstation.daemon.station import Station
from tokenstation.daemon.token.session import Connection

from helpers import DirectConnection, VirtualClock

C302 = "86596320000001"
READER = "Test Reader 00 00"
E = TypeVar("E", bound=Event)


class FixedTrust:
    def __init__(self, trusted: bool) -> None:
        self.answer = ClockTrust(trusted, "test", "fixed for the test")

    async def check(self, *, fresh: bool = False) -> ClockTrust:
        return self.answer


class Rig:
    """One reader, one simulated token, the station and clock sync; events collected."""

    def __init__(self, tmp: Path, offset: float, cfg: Config, serial: str = C302) -> None:
        self.tmp = tmp
        # The registry (and the Molto2 ledger beside it) live in the state folder, as in
        # the daemon.
        cfg = cfg if cfg.state_dir is not None else dataclasses.replace(cfg, state_dir=tmp)
        self.cfg = cfg
        self.clock = VirtualClock()
        self.events: list[Event] = []
        self.token = self.new_token(serial, offset)
        self.store = Store(tmp / "registry.sqlite3")

        def connect(_reader: str) -> contextlib.AbstractContextManager[Connection]:
            return contextlib.nullcontext(self.conn)

        self.station = Station(
            cfg, self.store, FixedTrust(True), connect, host_clock=lambda: self.clock
        )
        self.station.subscribe(self.events.append)
        self.sync = ClockSync(self.station)

    def new_token(self, serial: str, offset: float = 0.0) -> SimulatedToken:
        """Put another token in place of the current one (it is not on the reader yet)."""
        self.token = SimulatedToken(serial=serial, clock_offset_s=offset, host_time=self.clock.time)
        self.conn = DirectConnection(self.token, self.clock)
        return self.token

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    def kinds(self) -> list[type[Event]]:
        return [type(e) for e in self.events]

    async def wait_for(self, kind: type[E], n: int = 1) -> E:
        for _ in range(500):
            found = self.of(kind)
            if len(found) >= n:
                return found[n - 1]
            await asyncio.sleep(0.01)
        raise AssertionError(f"no {kind.__name__} in {[k.__name__ for k in self.kinds()]}")

    async def settle(self) -> None:
        """Let every other task (measurements, offers, burns) run to its end."""
        for _ in range(1000):
            others = asyncio.all_tasks() - {asyncio.current_task()}
            if not others:
                return
            await asyncio.wait(others, timeout=0.05)
        raise AssertionError("tasks still running")

    def place(self) -> None:
        self.station.on_reader_event(ReaderEvent(ReaderChange.READER_ADDED, READER))
        self.station.on_reader_event(ReaderEvent(ReaderChange.CARD_INSERTED, READER, b"\x3b\x80"))

    def remove(self) -> None:
        self.station.on_reader_event(ReaderEvent(ReaderChange.CARD_REMOVED, READER))


class InjectedCrash(BaseException):
    """The process dies here (a BaseException, so no handler in the daemon catches it)."""


class ProvRig(Rig):
    """Rig with the Provisioner and its queue beside the station."""

    def __init__(
        self,
        tmp: Path,
        cfg: Config,
        crash_at: str = "",
        *,
        queue: JobQueue | None = None,
        at_step: Callable[[str], None] | None = None,
    ) -> None:
        """``queue``: another queue than this station's own file (a shared one);
        ``at_step``: called at every crash point of a burn (``crash_at``: dies there)."""
        super().__init__(tmp, 0.0, cfg)
        self.queue = queue if queue is not None else JobQueue(tmp / "queue.sqlite3")

        def crash(step: str) -> None:
            if at_step is not None:
                at_step(step)
            if step == crash_at:
                raise InjectedCrash(step)

        self.prov = Provisioner(
            self.station,
            self.queue,
            self.cfg,
            drop_folder=tmp / "drop",
            log_path=tmp / "provisioning-log.csv",
            loop=asyncio.get_running_loop(),
            crash_point=crash,
        )

    async def add(self, name: str, text: str) -> int:
        path = self.tmp / name
        path.write_text(text + "\n")
        fd = os.open(path, os.O_RDONLY)  # as IngestFile hands it over (closed by ingest)
        taken = await self.prov.intake.ingest(fd, name)
        [job] = taken.queued
        return job.id

    async def close(self) -> None:
        await self.station.close()
        self.prov.close()

    def state(self, job_id: int) -> JobState:
        job = self.queue.get(job_id)
        assert job is not None
        return JobState(job.state)

    def log_rows(self) -> list[list[str]]:
        path = self.tmp / "provisioning-log.csv"
        return list(csv.reader(path.open()))[1:] if path.exists() else []
