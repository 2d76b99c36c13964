"""The station's event flow and clock sync against the in-process simulator."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tokenstation.daemon.config import Config, DefaultSettings
from tokenstation.daemon.events import (
    DriftDetected,
    ErrorKind,
    SyncDone,
    SyncFailed,
    TokenMeasured,
    TokenPresented,
    TokenRemoved,
)
from tokenstation.daemon.simulator.token import Faults
from tokenstation.daemon.station import StationError

from station_rig import C302, Rig


def confirmed() -> Config:
    return Config(token_defaults=DefaultSettings(confirmed=True))


def place(rig: Rig) -> None:
    rig.place()


def test_presented_then_measured_then_one_click_sync(tmp_path: Path) -> None:
    async def scenario() -> None:
        rig = Rig(tmp_path, 37.4, confirmed())
        place(rig)
        measured = await rig.wait_for(DriftDetected)
        assert rig.kinds().index(TokenPresented) < rig.kinds().index(TokenMeasured)
        assert measured.sync_offered is True
        result = await rig.sync.sync(C302)
        assert result.drift_before_words == "37.4 s fast"
        assert rig.of(SyncDone) == [result]
        assert abs(rig.token.snapshot()["clock_offset_s"]) < 0.05  # type: ignore[arg-type]
        await rig.station.close()

    asyncio.run(scenario())


def test_token_pulled_mid_sync_is_a_failure_never_a_success(tmp_path: Path) -> None:
    async def scenario() -> None:
        rig = Rig(tmp_path, 37.4, confirmed())
        place(rig)
        await rig.wait_for(DriftDetected)
        # GET INFO, GET CHALLENGE and AUTHENTICATE pass; the field is lost at WRITE CONFIG.
        rig.token.faults = Faults(drop_after=rig.token._session_commands + 3)
        try:
            await rig.sync.sync(C302)
        except StationError as exc:
            assert exc.kind == ErrorKind.FAILED
            assert "left the field during WRITE CONFIG" in exc.message
        else:
            raise AssertionError("a lost field was taken as success")
        failed = await rig.wait_for(SyncFailed)
        assert "Place the token again" in failed.next_step
        assert SyncDone not in rig.kinds()
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
        await rig.wait_for(TokenPresented)
        rig.remove()
        await asyncio.sleep(0.1)
        assert TokenRemoved in rig.kinds()
        await rig.station.close()  # lets the measurement in flight finish
        assert TokenMeasured not in rig.kinds()  # stale result dropped
        assert rig.station.present() == []

    asyncio.run(scenario())
