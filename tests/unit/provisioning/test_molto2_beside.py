"""Deleting a Molto2 profile, and burning one account into a chosen profile, through the
daemon's one write path, in-process on the simulated Molto2
(tests/integration/test_molto2_daemon.py runs them over D-Bus and PC/SC)."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest
from test_molto2_station import SERIAL, Molto2Rig, attended, preload, station_mode

from tokenstation.daemon.events import BurnOffered, Fault, ProfileDeleted, decode, to_wire
from tokenstation.daemon.provisioning.molto2_account import burn_account
from tokenstation.daemon.provisioning.molto2_delete import delete_profile
from tokenstation.daemon.registry.molto2_ledger import station_ledger
from tokenstation.daemon.simulator.molto2 import Molto2Faults
from tokenstation.daemon.station import StationError
from tray.model import TrayModel


def test_a_delete_clears_the_profile_records_it_and_refreshes_the_presence(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        rig = Molto2Rig(tmp_path, attended())
        preload(rig, 3, "Keep")
        preload(rig, 4, "Other")
        station_ledger(tmp_path).record(SERIAL, 3, "Bitbucket:alice", "0123abcd")
        rig.place()
        await rig.settle()
        tray = TrayModel()
        tray.connected = True
        for e in rig.events:
            tray.apply(e)
        done = await delete_profile(rig.station, SERIAL, 3)
        assert done.deleted and done.profile == 3 and done.title == "Keep"
        assert rig.device.slots[3].seed is None and rig.device.slots[3].title == "Keep"
        assert rig.device.slots[4].seed is not None  # only the one asked for
        assert done.profiles_used == 1 and done.next_free_profile == 0
        assert done.profiles is not None and not done.profiles[3].seed_present
        assert rig.of(ProfileDeleted) == [done]
        [op] = [op for op in rig.store.operations(SERIAL) if op.kind == "delete"]
        assert (op.outcome, op.profile, op.secret_fingerprint) == ("ok", 3, "0123abcd")
        assert "Bitbucket:alice" in op.detail
        assert 3 not in station_ledger(tmp_path).accounts(SERIAL)
        # The tray's view of the Molto2 follows the event (as it arrives over the bus).
        tray.apply(decode(ProfileDeleted, to_wire(done)))
        view = tray.present[done.reader]
        assert view.profiles_used == 1 and "1 of 100 profiles used" in tray.tooltip()
        await rig.close()

    asyncio.run(scenario())


def test_a_delete_of_an_empty_profile_sends_no_delete_and_bad_profiles_are_refused(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        rig = Molto2Rig(tmp_path, attended())
        rig.place()
        await rig.settle()
        before = rig.device.apdus
        done = await delete_profile(rig.station, SERIAL, 5)
        assert not done.deleted
        assert rig.device.apdus - before == 2  # GET INFO and the profile read; no DELETE
        for bad in (100, 250):
            with pytest.raises(StationError) as refused:
                await delete_profile(rig.station, SERIAL, bad)
            assert refused.value.kind == "invalid"
        with pytest.raises(StationError) as absent:
            await delete_profile(rig.station, "58009999", 1)
        assert absent.value.kind == "not-present"
        await rig.close()

    asyncio.run(scenario())


def test_a_delete_cut_short_is_recorded_as_failed_and_announced(tmp_path: Path) -> None:
    async def scenario() -> None:
        # The examination (101 APDUs), GET INFO and the profile read: gone at the DELETE.
        rig = Molto2Rig(tmp_path, attended(), faults=Molto2Faults(drop_after=101 + 2))
        preload(rig, 2, "Keep")
        rig.place()
        await rig.settle()
        with pytest.raises(StationError) as failed:
            await delete_profile(rig.station, SERIAL, 2)
        assert failed.value.kind == "failed"
        [fault] = rig.of(Fault)
        assert "could not delete profile 2" in fault.message
        [op] = [op for op in rig.store.operations(SERIAL) if op.kind == "delete"]
        assert op.outcome == "failed" and op.profile == 2
        await rig.close()

    asyncio.run(scenario())


# -- BurnAccount: one account into the profile asked for ---------------------------------------


def account_fd(tmp: Path, uri: str) -> int:
    path = tmp / "account.txt"
    path.write_text(f"# {uuid.uuid4()}\n{uri}\n")  # a nonce line, as the command sends
    return os.open(path, os.O_RDONLY)


SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def test_burn_account_goes_into_the_profile_asked_for_even_in_station_mode(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        rig = Molto2Rig(tmp_path, station_mode())
        preload(rig, 1, "Keep")
        rig.place()
        await rig.settle()
        uri = f"otpauth://totp/Bitbucket:alice?secret={SECRET}"
        done = await burn_account(rig.prov, account_fd(tmp_path, uri), "a.txt", SERIAL, profile=9)
        await rig.settle()
        assert done.job.profile == 9 and done.expected_code
        assert rig.device.slots[9].title == "Bitbucket:al"
        assert [s.seed_writes for s in rig.device.slots[:10]] == [0] * 9 + [1]  # not 0
        assert rig.of(BurnOffered) == [] and rig.state(done.job.id) == "burned"
        # next, no name: the lowest free profile, titled by its number
        raw = f"otpauth://totp/?secret={SECRET}AB"
        nxt = await burn_account(rig.prov, account_fd(tmp_path, raw), "b.txt", SERIAL)
        assert nxt.job.profile == 0 and rig.device.slots[0].title == "Profile 0"
        await rig.close()

    asyncio.run(scenario())


def test_burn_account_never_over_a_seed_and_leaves_no_job_behind(tmp_path: Path) -> None:
    async def scenario() -> None:
        rig = Molto2Rig(tmp_path, attended())
        preload(rig, 4, "Keep")
        rig.place()
        await rig.settle()
        uri = f"otpauth://totp/GitHub:bob?secret={SECRET}"
        with pytest.raises(StationError) as refused:
            await burn_account(rig.prov, account_fd(tmp_path, uri), "a.txt", SERIAL, profile=4)
        assert refused.value.kind == "refused" and "already holds a seed" in refused.value.message
        assert rig.device.slots[4].seed_writes == 0 and rig.device.slots[4].title == "Keep"
        assert rig.queue.jobs(["queued"]) == [] and rig.queue.total(["removed"]) == 1
        with pytest.raises(StationError) as bad:
            await burn_account(
                rig.prov, account_fd(tmp_path, uri), "a.txt", SERIAL, profile=0, title="x" * 13
            )
        assert bad.value.kind == "invalid"
        # refused before anything was queued: the same account may be burned after all
        done = await burn_account(rig.prov, account_fd(tmp_path, uri), "a.txt", SERIAL, profile=0)
        assert done.job.profile == 0 and rig.device.slots[0].title == "GitHub:bob"
        await rig.close()

    asyncio.run(scenario())
