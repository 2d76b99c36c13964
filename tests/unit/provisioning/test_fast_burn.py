"""Placed to burned at the limit: in station mode a token that is burned at once is not
measured precisely first (the burn sets its clock): one read gives the drift before,
recorded with its one-second window, the clock is written at the host's next second and
measured precisely after. Attended offers still show the precise drift.

On the in-process simulator with a virtual clock (tests/station_rig.py); the daemon on
the real stack is measured by bench/bench_burnpath.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tokenstation.daemon.config import Config, DefaultSettings
from tokenstation.daemon.events import BurnDone, BurnOffered, JobState, TokenMeasured
from tokenstation.daemon.simulator.token import SimulatedToken
from tokenstation.daemon.token.commands import INS_GET_INFO, INS_WRITE_SEED
from tokenstation.daemon.token.session import KEEPING_BOUND_S, RESETTING_BOUND_S

from station_rig import C302, ProvRig

URI = "otpauth://totp/Bitbucket:alice?secret=JBSWY3DPEHPK3PXP&issuer=Bitbucket"
OFFSET = 7.3  # the fresh token's clock, seconds ahead of the host


def config(mode: str) -> Config:
    return Config(token_defaults=DefaultSettings(confirmed=True), mode=mode)


def reads_before_seed(sent: list[bytes]) -> int:
    """GET INFO reads sent before the seed write (a precise measurement takes several)."""
    ins = [apdu[1] for apdu in sent]
    return ins[: ins.index(INS_WRITE_SEED)].count(INS_GET_INFO)


@pytest.mark.parametrize("phase", ["reset", "keep"])
def test_station_mode_burns_without_a_precise_measurement_first_and_measures_after(
    tmp_path: Path, phase: str
) -> None:
    async def scenario() -> None:
        rig = ProvRig(tmp_path, config("station"))
        rig.token = SimulatedToken(
            serial=C302, clock_offset_s=OFFSET, host_time=rig.clock.time, clock_phase=phase
        )
        rig.conn.token = rig.token
        job = await rig.add("bitbucket.txt", URI)
        rig.place()
        done = await rig.wait_for(BurnDone)
        assert rig.state(job) == JobState.BURNED and done.job.id == job

        # Before the burn: one read, shown and recorded as such (no sync offered).
        measured = rig.of(TokenMeasured)[0]
        assert measured.precise is False and measured.drift_method == "single-read"
        assert measured.sync_offered is False and measured.auto_sync is False
        before, *_middle, after = rig.store.drift_history(C302)
        assert before.method == "single-read" and before.uncertainty_s >= 0.5
        assert abs(before.drift_s - OFFSET) <= before.uncertainty_s  # the window holds it
        # The seed written after the serial read, the clock write and the seed (a
        # precise measurement would add a read every 25 ms for up to a second).
        assert reads_before_seed(rig.conn.sent) <= 3

        # After: measured precisely, and the clock within its kind's bound.
        assert after.method == "rollover" and after.uncertainty_s < 0.05
        bound = KEEPING_BOUND_S if phase == "keep" else RESETTING_BOUND_S
        assert abs(after.drift_s) <= bound
        assert abs(float(rig.token.snapshot()["clock_offset_s"])) <= bound + 0.01
        await rig.settle()
        (shown,) = rig.station.present()  # every view: measured precisely now
        assert shown["precise"] is True and shown["drift_method"] == "rollover"
        await rig.close()

    asyncio.run(scenario())


def test_attended_offers_still_show_the_precise_drift(tmp_path: Path) -> None:
    async def scenario() -> None:
        rig = ProvRig(tmp_path, config("attended"))
        rig.token = SimulatedToken(serial=C302, clock_offset_s=OFFSET, host_time=rig.clock.time)
        rig.conn.token = rig.token
        await rig.add("bitbucket.txt", URI)
        rig.place()
        await rig.wait_for(BurnOffered)
        measured = rig.of(TokenMeasured)[0]
        assert measured.precise is True and measured.drift_method == "rollover"
        assert abs(measured.drift_s - OFFSET) < 0.05
        await rig.close()

    asyncio.run(scenario())


def test_station_mode_measures_precisely_a_token_it_will_not_burn(tmp_path: Path) -> None:
    """No job waiting: the placement is measured as any is (the drift is what is shown)."""

    async def scenario() -> None:
        rig = ProvRig(tmp_path, config("station"))
        rig.place()
        measured = await rig.wait_for(TokenMeasured)
        assert measured.precise is True and measured.drift_method == "rollover"
        assert rig.token.seed_writes == 0
        await rig.close()

    asyncio.run(scenario())
