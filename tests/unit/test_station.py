"""The station's event flow against the in-process simulator (no PC/SC, no D-Bus).

The host-clock trust source is the one stand-in here (a fixed answer); the
integration tests ask the real systemd-timedated.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from tokenstation.daemon.config import Config, DefaultSettings
from tokenstation.daemon.pcsc import ReaderEvent
from tokenstation.daemon.policy import ClockTrust
from tokenstation.daemon.simulator.token import Faults, SimulatedToken
from tokenstation.daemon.station import EventKind, Station, StationError, StationEvent
from tokenstation.daemon.store import Store
from tokenstation.daemon.token.session import Connection

from helpers import DirectConnection, VirtualClock

C302 = "86596320000001"
READER = "Test Reader 00 00"


class FixedTrust:
    def __init__(self, trusted: bool) -> None:
        self.answer = ClockTrust(trusted, "test", "fixed for the test")

    async def check(self, *, fresh: bool = False) -> ClockTrust:
        return self.answer


class Rig:
    def __init__(self, tmp: Path, offset: float, cfg: Config) -> None:
        self.clock = VirtualClock()
        self.token = SimulatedToken(serial=C302, clock_offset_s=offset, host_time=self.clock.time)
        self.conn = DirectConnection(self.token, self.clock)
        self.store = Store(tmp / "registry.sqlite3")
        self.events: list[StationEvent] = []

        def connect(_reader: str) -> contextlib.AbstractContextManager[Connection]:
            return contextlib.nullcontext(self.conn)

        self.station = Station(
            cfg, self.store, FixedTrust(True), connect, host_clock=lambda: self.clock
        )
        self.station.subscribe(self.events.append)

    def kinds(self) -> list[EventKind]:
        return [e.kind for e in self.events]

    async def wait_for(self, kind: EventKind, n: int = 1) -> StationEvent:
        for _ in range(500):
            found = [e for e in self.events if e.kind == kind]
            if len(found) >= n:
                return found[n - 1]
            await asyncio.sleep(0.01)
        raise AssertionError(f"no {kind} in {self.kinds()}")


def confirmed() -> Config:
    return Config(token_defaults=DefaultSettings(confirmed=True))


def place(rig: Rig) -> None:
    rig.station.on_reader_event(ReaderEvent("reader-added", READER))
    rig.station.on_reader_event(ReaderEvent("card-inserted", READER, b"\x3b\x80"))


def test_presented_then_measured_then_one_click_sync(tmp_path: Path) -> None:
    async def scenario() -> None:
        rig = Rig(tmp_path, 37.4, confirmed())
        place(rig)
        measured = await rig.wait_for(EventKind.DRIFT_DETECTED)
        assert rig.kinds().index(EventKind.TOKEN_PRESENTED) < rig.kinds().index(
            EventKind.TOKEN_MEASURED
        )
        assert measured.payload["sync_offered"] is True
        result = await rig.station.sync(C302)
        assert result["drift_before_words"] == "37.4 s fast"
        assert abs(rig.token.snapshot()["clock_offset_s"]) < 0.05  # type: ignore[arg-type]
        await rig.station.close()

    asyncio.run(scenario())


def test_token_pulled_mid_sync_is_a_failure_never_a_success(tmp_path: Path) -> None:
    async def scenario() -> None:
        rig = Rig(tmp_path, 37.4, confirmed())
        place(rig)
        await rig.wait_for(EventKind.DRIFT_DETECTED)
        # GET INFO, GET CHALLENGE and AUTHENTICATE pass; the field is lost at WRITE CONFIG.
        rig.token.faults = Faults(drop_after=rig.token._session_commands + 3)
        try:
            await rig.station.sync(C302)
        except StationError as exc:
            assert exc.kind == "failed"
            assert "left the field during WRITE CONFIG" in exc.message
        else:
            raise AssertionError("a lost field was taken as success")
        failed = await rig.wait_for(EventKind.SYNC_FAILED)
        assert "Place the token again" in str(failed.payload["next_step"])
        assert EventKind.SYNC_DONE not in rig.kinds()
        [op] = rig.store.operations(C302)
        assert op.outcome == "failed"
        assert rig.store.token(C302).settings is None  # type: ignore[union-attr]
        await rig.station.close()

    asyncio.run(scenario())


def test_removal_before_the_measurement_ends_reports_nothing_stale(tmp_path: Path) -> None:
    async def scenario() -> None:
        rig = Rig(tmp_path, 5.0, confirmed())
        rig.token.faults = Faults(delay_s=0.01)  # the rollover wait takes real time
        place(rig)
        await rig.wait_for(EventKind.TOKEN_PRESENTED)
        rig.station.on_reader_event(ReaderEvent("card-removed", READER))
        await asyncio.sleep(0.1)
        assert EventKind.TOKEN_REMOVED in rig.kinds()
        await rig.station.close()  # lets the measurement in flight finish
        assert EventKind.TOKEN_MEASURED not in rig.kinds()  # stale result dropped
        assert rig.station.present() == []

    asyncio.run(scenario())
