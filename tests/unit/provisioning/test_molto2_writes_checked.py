"""Every Molto2 clock write is checked: a profile clock that does not take the time
written fails the sync or the burn (never "ok"), in-process through the daemon's write
path on the simulated Molto2 whose profile clocks ignore writes (answering 90 00);
tests/integration/test_molto2_checked.py runs the CLI and the daemon on the real stack."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from test_molto2_station import SERIAL, Molto2Rig, attended, preload, station_mode

from tokenstation.daemon.events import (
    BurnDone,
    BurnFailed,
    BurnOutcome,
    OperationKind,
    Outcome,
    ProfilesSynced,
    SyncFailed,
    TokenMeasured,
    TokenUpdated,
)
from tokenstation.daemon.station import StationError
from tokenstation.daemon.token.molto2_session import molto2_drift_words
from tray.model import TrayModel


def test_a_sync_whose_profile_clock_does_not_move_fails_with_what_happened(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        rig = Molto2Rig(tmp_path, attended(), clock_offset_s=-300.0, clock_ignores_writes=True)
        for i in (0, 4):
            preload(rig, i, f"P{i}")
        rig.place()
        await rig.settle()
        with pytest.raises(StationError) as failed:
            await rig.sync.sync(SERIAL)
        assert failed.value.kind == "failed"
        [event] = rig.of(SyncFailed)
        assert event.outcome == Outcome.FAILED
        assert "the clock of profile 0 (P0) did not take the time written" in event.message
        assert "it was 300 s slow and reads 300 s slow (whole-second clock, ±1 s)" in (
            event.message
        )
        assert "no profile's clock was set, and the sync stopped there" in event.message
        assert "sync once more" in event.next_step
        assert rig.of(ProfilesSynced) == []
        assert rig.device.slots[4].sync_writes == 0  # stopped at the first that did not take
        [op] = [op for op in rig.store.operations(SERIAL) if op.kind == "sync"]
        assert op.outcome == "failed"
        # The views: the clock as read back after the write, still offered for a sync.
        updated = await rig.wait_for(TokenUpdated)
        assert rig.of(TokenUpdated) == [updated]
        assert (updated.after, updated.outcome) == (OperationKind.SYNC, Outcome.FAILED)
        assert updated.drift_s == -300.0 and updated.sync_offered
        await rig.close()

    asyncio.run(scenario())


def test_a_burn_whose_clock_does_not_take_fails_for_a_person_never_ok(tmp_path: Path) -> None:
    async def scenario() -> None:
        rig = Molto2Rig(tmp_path, station_mode(), clock_offset_s=-300.0, clock_ignores_writes=True)
        [job] = await rig.batch(1)
        rig.place()
        await rig.settle()
        assert rig.of(BurnDone) == []
        [failed] = rig.of(BurnFailed)
        assert failed.outcome == BurnOutcome.FAILED and failed.job.profile == 0
        assert "its clock did not take the time written" in failed.message
        assert "reads 300 s slow" in failed.message
        assert "tokenstation sync" in failed.next_step
        assert rig.state(job) == "failed"
        # The seed did land (the profile is never offered again as free).
        assert rig.device.slots[0].seed is not None
        await rig.wait_for(TokenUpdated)
        [updated] = [u for u in rig.of(TokenUpdated) if u.after == OperationKind.BURN]
        assert updated.outcome == Outcome.FAILED
        assert updated.profiles is not None and updated.profiles[0].seed_present
        assert updated.next_free_profile == 1
        await rig.close()

    asyncio.run(scenario())


def test_one_drift_figure_in_the_presence_the_log_the_sync_and_the_tray(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        caplog.set_level("INFO")
        rig = Molto2Rig(tmp_path, attended(), clock_offset_s=6.8)
        for i in (1, 2):
            preload(rig, i, f"P{i}")
        rig.place()
        await rig.settle()
        measured = rig.of(TokenMeasured)[0]
        assert measured.drift_s in (6.0, 7.0)  # whole seconds: 6.8 read at some instant
        words = molto2_drift_words(measured.drift_s)
        assert words == f"{measured.drift_s:.0f} s fast (whole-second clock, ±1 s)"
        assert measured.drift_words == words
        assert f"clock {words}" in caplog.text
        tray = TrayModel()
        tray.connected = True
        tray.apply(measured)
        assert tray.menu()[0].text == f"{SERIAL} Molto2v2: 2 of 100 profiles used, {words}"
        done = await rig.sync.sync(SERIAL)
        assert isinstance(done, ProfilesSynced)
        assert done.drift_before_s == measured.drift_s  # the figure shown before, not another
        assert done.drift_before_words == molto2_drift_words(measured.drift_s, precision=False)
        assert done.drift_after_words == "in time (whole-second clock, ±1 s)"
        await rig.settle()
        await rig.wait_for(TokenUpdated)
        updated = rig.of(TokenUpdated)[-1]
        assert updated.drift_words == "in time (whole-second clock, ±1 s)"
        tray.apply(updated)
        assert tray.menu()[0].text.endswith("profiles used, in time (whole-second clock, ±1 s)")
        await rig.close()

    asyncio.run(scenario())
