"""The daemon's Molto2 side in-process: offer/selection policy (pure), and the station,
provisioner and clock sync on the in-process Molto2 simulator behind the injectable
connect (no PC/SC here; tests/integration/test_molto2_daemon.py runs the real stack)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import gc
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from pgserver import PgServer
from test_provisioner import STEPS

from tokenstation.daemon.config import Config, DefaultSettings
from tokenstation.daemon.events import (
    BurnDone,
    BurnFailed,
    BurnOffered,
    BurnOutcome,
    JobView,
    ProfilesSynced,
    ReaderChange,
    TokenMeasured,
)
from tokenstation.daemon.families.molto2_batch import BETWEEN_PROFILES
from tokenstation.daemon.families.molto2_burn import (
    choose_profile_job,
    offer_question,
    profile_title,
)
from tokenstation.daemon.families.molto2_ledger import Ledger
from tokenstation.daemon.intake.otpauth import OtpAccount
from tokenstation.daemon.pcsc import ReaderEvent
from tokenstation.daemon.provisioning.queue import Job, JobQueue, NewJob
from tokenstation.daemon.registry.store import Store
from tokenstation.daemon.simulator.molto2 import Molto2Faults, SimulatedMolto2
from tokenstation.daemon.station import StationError
from tokenstation.daemon.storage import schema
from tokenstation.daemon.storage.postgres import PostgresDatabase
from tokenstation.daemon.storage.secretbox import SecretBox
from tokenstation.daemon.token import commands
from tokenstation.daemon.token import molto2 as m
from tokenstation.daemon.token.secret import Secret
from tokenstation.daemon.token.settings import HmacAlgorithm
from tray.model import TrayModel

from helpers import DirectConnection
from station_rig import InjectedCrash, ProvRig

MOLTO2_READER = "TOKEN2 Molto2 [CCID Interface] 00 00"
SERIAL = "58000001"
#: APDUs of one examination by name: GET INFO and 100 profile reads.
EXAMINE = 101


def job(
    job_id: int, serial: str = "", issuer: str = "Bitbucket", account: str = "alice", **kw: object
) -> Job:
    fields: dict[str, object] = dict(
        id=job_id,
        state="queued",
        fingerprint="0123abcd",
        issuer=issuer,
        account=account,
        algorithm="SHA1",
        period=30,
        serial=serial,
        source="batch.csv (row 1)",
        created=0.0,
        updated=0.0,
        attempts=0,
        reason="",
        burned_serial=None,
        burned_at=None,
    )
    fields.update(kw)
    return Job(**fields)  # type: ignore[arg-type]


# -- the choice (pure) ------------------------------------------------------------------------


def test_bound_jobs_go_first_into_the_lowest_free_profile() -> None:
    waiting = [job(1), job(2, serial=SERIAL), job(3, serial="86596320000001")]
    choice = choose_profile_job(SERIAL, [7, 8, 40], waiting, "attended")
    assert (choice.job and choice.job.id, choice.profile, choice.automatic) == (2, 7, False)
    choice = choose_profile_job(SERIAL, [7], [job(1), job(3, serial="86596320000001")], "station")
    assert (choice.job and choice.job.id, choice.profile, choice.automatic) == (1, 7, True)


def test_no_free_profile_no_usable_job_means_nothing_with_the_reason() -> None:
    full = choose_profile_job(SERIAL, [], [job(1)], "station")
    assert (
        full.job is None and "every profile" in full.reason and "never written over" in full.reason
    )
    other = choose_profile_job(SERIAL, [3], [job(1, serial="86596320000001")], "station")
    assert other.job is None and other.reason == "no job for this Molto2"
    odd = choose_profile_job(SERIAL, [3], [job(1, algorithm="SHA512")], "station")
    assert odd.job is None


def test_titles_are_cut_to_twelve_bytes_and_the_offer_names_the_profile() -> None:
    assert profile_title(job(1), 7) == "Bitbucket:al"
    # 11 bytes: the next "é" (2 bytes) would make 13, so the cut is on the character before
    assert profile_title(job(1, issuer="Zoë", account="ééééé"), 7) == "Zoë:ééé"
    assert len(profile_title(job(1, issuer="日本語", account="x"), 0).encode()) <= 12
    assert profile_title(job(1, issuer="", account=""), 4) == "(unnamed)"
    assert offer_question(job(1), 7, SERIAL) == (
        "Burn Bitbucket:alice into profile 7 of Molto2 58000001?"
    )


def test_the_tray_shows_the_offer_and_the_molto2_in_words() -> None:
    tray = TrayModel()
    tray.connected = True
    view = JobView(id=4, state="queued", label="Bitbucket:alice", secret_fingerprint="0123abcd")  # type: ignore[arg-type]
    offer = BurnOffered(
        reader=MOLTO2_READER,
        serial=SERIAL,
        model="Molto2v2",
        job=view,
        question=offer_question(job(4), 7, SERIAL),
        profile=7,
    )
    [bubble] = tray.apply(offer)
    assert bubble.summary == "Burn Bitbucket:alice into profile 7 of Molto2 58000001?"
    assert [a for a, _ in bubble.actions] == ["burn", "skip"]
    measured = TokenMeasured(
        reader=MOLTO2_READER,
        state="token",  # type: ignore[arg-type]
        placed_at=0.0,
        serial=SERIAL,
        model="Molto2v2",
        drift_s=3.2,
        verdict="drift",  # type: ignore[arg-type]
        sync_safe=True,
        sync_offered=True,
        # The family's words, as the station publishes them (families/molto2.py).
        family="molto2",
        name_words="Molto2v2 58000001",
        holds_words="12 of 100 profiles used",
        profiles_total=100,
        profiles_used=12,
        next_free_profile=12,
    )
    [bubble] = tray.apply(measured)
    assert bubble.summary == "Molto2v2 58000001"
    assert bubble.body.startswith("12 of 100 profiles used, drift +3 s.")
    assert "sync" in dict(bubble.actions)
    assert tray.menu()[0].text == "58000001 Molto2v2: 12 of 100 profiles used, drift +3 s"
    assert "12 of 100 profiles used" in tray.tooltip()


# -- the station, provisioner and sync on the in-process simulator ----------------------------


class Molto2Rig(ProvRig):
    """ProvRig with a simulated Molto2 on a reader named as the real one."""

    def __init__(self, tmp: Path, cfg: Config, **device: object) -> None:
        super().__init__(tmp, cfg)
        self.device = SimulatedMolto2(host_time=self.clock.time, **device)  # type: ignore[arg-type]
        self.conn = DirectConnection(self.device, self.clock)  # type: ignore[arg-type]

    def place(self) -> None:
        self.station.on_reader_event(ReaderEvent(ReaderChange.READER_ADDED, MOLTO2_READER))
        self.station.on_reader_event(
            ReaderEvent(ReaderChange.CARD_INSERTED, MOLTO2_READER, b"\x3b\x80")
        )

    def pull(self) -> None:
        self.station.on_reader_event(ReaderEvent(ReaderChange.CARD_REMOVED, MOLTO2_READER))
        self.device.unplugged()

    def seed_writes(self) -> list[int]:
        return [p.seed_writes for p in self.device.slots]

    async def batch(self, n: int) -> list[int]:
        """A CSV batch of ``n`` unbound rows, through the real intake."""
        rows = "\n".join(
            f",{base64.b32encode(f'molto2-seed-{i:04d}'.encode()).decode()},Svc{i},user{i}"
            for i in range(n)
        )
        path = self.tmp / "batch.csv"
        path.write_text("serial,secret,issuer,account\n" + rows + "\n")
        taken = await self.prov.intake.ingest(os.open(path, os.O_RDONLY), "batch.csv")
        return [j.id for j in taken.queued]


def station_mode() -> Config:
    return Config(token_defaults=DefaultSettings(confirmed=False), mode="station")


def attended() -> Config:
    return Config(token_defaults=DefaultSettings(confirmed=False))


def preload(rig: Molto2Rig, index: int, title: str) -> None:
    rig.device.preload(index, Secret(f"kept-{index}".encode() * 2), m.ProfileSettings(), title)


def test_station_mode_fills_free_profiles_around_a_seeded_one_and_never_over_it(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        rig = Molto2Rig(tmp_path, station_mode())
        preload(rig, 1, "Keep")
        jobs = await rig.batch(4)
        rig.place()
        await rig.settle()
        measured = rig.of(TokenMeasured)[0]
        assert (measured.model, measured.profiles_total, measured.profiles_used) == (
            "Molto2v2",
            100,
            1,
        )
        assert measured.next_free_profile == 0 and measured.profiles is not None
        assert measured.profiles[1].title == "Keep" and measured.profiles[1].seed_present
        done = rig.of(BurnDone)
        assert [d.job.profile for d in done] == [0, 2, 3, 4]
        assert [d.job.id for d in done] == jobs
        assert all(rig.state(j) == "burned" for j in jobs)
        assert rig.seed_writes()[:6] == [1, 0, 1, 1, 1, 0]
        assert rig.device.slots[1].title == "Keep"
        assert [rig.device.slots[i].title for i in (0, 2, 3, 4)] == [
            "Svc0:user0",
            "Svc1:user1",
            "Svc2:user2",
            "Svc3:user3",
        ]
        # Registry, provisioning log and ledger record serial + profile.
        ops = [op for op in rig.store.operations(SERIAL) if op.kind == "burn"]
        assert [op.profile for op in ops] == [0, 2, 3, 4]
        assert [(r[2], r[-1]) for r in rig.log_rows()] == [(SERIAL, str(i)) for i in (0, 2, 3, 4)]
        ledger = json.loads((tmp_path / "molto2-profiles.json").read_text())
        assert ledger[SERIAL]["2"]["account"] == "Svc1:user1"
        await rig.close()

    asyncio.run(scenario())


def test_station_mode_burns_waiting_jobs_in_one_session_with_every_intent_first(
    tmp_path: Path,
) -> None:
    """Five jobs into a Molto2 in station mode: one login for all of them, and every job
    claimed into its profile before the first seed reaches the token."""

    async def scenario() -> None:
        rig = Molto2Rig(tmp_path, station_mode())
        jobs = await rig.batch(5)
        states_at_first_seed: list[list[str]] = []
        answer = rig.device.process

        def watch(apdu: bytes) -> bytes | None:
            if apdu[1] == commands.INS_WRITE_SEED and not states_at_first_seed:
                states_at_first_seed.append([rig.state(j) for j in jobs])
            return answer(apdu)

        rig.device.process = watch  # type: ignore[method-assign]
        rig.place()
        await rig.settle()
        assert [rig.state(j) for j in jobs] == ["burned"] * 5
        assert [d.job.profile for d in rig.of(BurnDone)] == [0, 1, 2, 3, 4]
        logins = [c for c, _r in rig.device.log if c[1] == commands.INS_AUTHENTICATE]
        assert len(logins) == 1
        assert states_at_first_seed == [["burning"] * 5]
        assert len(rig.log_rows()) == 5
        ledger = json.loads((tmp_path / "molto2-profiles.json").read_text())
        assert sorted(ledger[SERIAL]) == ["0", "1", "2", "3", "4"]
        await rig.close()

    asyncio.run(scenario())


def test_attended_mode_offers_each_job_for_the_next_free_profile(tmp_path: Path) -> None:
    async def scenario() -> None:
        rig = Molto2Rig(tmp_path, attended())
        preload(rig, 0, "Old")
        jobs = await rig.batch(2)
        rig.place()
        await rig.settle()
        [offer] = rig.of(BurnOffered)
        assert offer.question == f"Burn Svc0:user0 into profile 1 of Molto2 {SERIAL}?"
        assert offer.profile == 1 and rig.seed_writes()[:3] == [0, 0, 0]
        done = await rig.prov.burn(jobs[0], SERIAL)
        assert done.job.profile == 1
        await rig.settle()
        second = rig.of(BurnOffered)[-1]
        assert second.job.id == jobs[1] and second.profile == 2
        assert rig.seed_writes()[:3] == [0, 1, 0]
        await rig.close()

    asyncio.run(scenario())


def test_a_molto2_pulled_after_the_seed_write_finishes_that_profile_without_a_second_seed(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        # One session for the batch: GET INFO, READ PROFILE, GET CHALLENGE, AUTHENTICATE,
        # WRITE SEED, WRITE TITLE, WRITE CONFIG, READ PROFILE for the first profile; the
        # second without the login (GET INFO, READ PROFILE, WRITE SEED, WRITE TITLE ...):
        # the device leaves instead of answering the second burn's title.
        rig = Molto2Rig(tmp_path, station_mode(), faults=Molto2Faults(drop_after=EXAMINE + 8 + 3))
        jobs = await rig.batch(4)
        rig.place()
        await rig.settle()
        [failed] = rig.of(BurnFailed)
        assert failed.outcome == BurnOutcome.INTERRUPTED and failed.job.profile == 1
        assert rig.state(jobs[1]) == "burning" and rig.state(jobs[2]) == "queued"
        assert rig.seed_writes()[:3] == [1, 1, 0] and rig.device.slots[1].title == ""
        rig.pull()
        rig.place()
        await rig.settle()
        assert all(rig.state(j) == "burned" for j in jobs)
        assert rig.seed_writes()[:5] == [1, 1, 1, 1, 0]  # no profile written twice
        assert rig.device.slots[1].title == "Svc1:user1"
        assert [d.job.profile for d in rig.of(BurnDone)] == [0, 1, 2, 3]
        await rig.close()

    asyncio.run(scenario())


def test_a_molto2_pulled_before_the_seed_landed_resumes_at_the_next_free_profile(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        # The second burn's WRITE SEED gets no answer (and the device never saw it); the
        # batch's session logged in once, for the first profile.
        rig = Molto2Rig(tmp_path, station_mode(), faults=Molto2Faults(drop_after=EXAMINE + 8 + 2))
        jobs = await rig.batch(3)
        rig.place()
        await rig.settle()
        assert rig.of(BurnFailed)[0].outcome == BurnOutcome.INTERRUPTED
        rig.pull()
        rig.place()
        await rig.settle()
        assert all(rig.state(j) == "burned" for j in jobs)
        assert rig.seed_writes()[:4] == [1, 1, 1, 0]
        assert [d.job.profile for d in rig.of(BurnDone)] == [0, 1, 2]
        await rig.close()

    asyncio.run(scenario())


def test_sync_sets_every_seeded_profile_and_reports_drift_before_and_after(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        rig = Molto2Rig(tmp_path, attended(), clock_offset_s=30.0)
        for i in (0, 3, 7):
            preload(rig, i, f"P{i}")
        rig.place()
        await rig.settle()
        measured = rig.of(TokenMeasured)[0]
        assert measured.drift_s is not None and round(measured.drift_s) == 30
        assert measured.sync_offered and measured.settings is None
        done = await rig.sync.sync(SERIAL)
        assert isinstance(done, ProfilesSynced)
        assert done.synced == 3 and [p.profile for p in done.profiles] == [0, 3, 7]
        assert done.drift_before_s is not None and round(done.drift_before_s) == 30
        assert done.drift_after_s is not None and abs(done.drift_after_s) <= 1
        assert [rig.device.slots[i].sync_writes for i in (0, 1, 3, 7)] == [1, 0, 1, 1]
        assert rig.seed_writes()[:8] == [0] * 8  # time only
        view = rig.station.readers[MOLTO2_READER]
        assert view is not None and view.ident is not None and abs(view.ident.drift.drift_s) <= 1
        await rig.close()

    asyncio.run(scenario())


def test_a_refused_key_is_tried_once_and_the_batch_stops(tmp_path: Path) -> None:
    async def scenario() -> None:
        rig = Molto2Rig(tmp_path, station_mode(), customer_key=b"not the factory key")
        jobs = await rig.batch(3)
        rig.place()
        await rig.settle()
        assert rig.device.attempts_left == rig.device.attempts - 1  # one authentication
        [failed] = rig.of(BurnFailed)
        assert failed.outcome == BurnOutcome.FAILED and "6309" in failed.message
        assert "9 attempts are left" in failed.next_step and "Do not retry" in failed.next_step
        assert [rig.state(j) for j in jobs] == ["failed", "queued", "queued"]
        # More jobs arriving, a click on Burn or Sync: the key is not tried again.
        rig.prov.offer_all()  # as when more jobs arrive
        await rig.settle()
        for attempt in (rig.prov.burn(jobs[1], SERIAL), rig.sync.sync(SERIAL)):
            try:
                await attempt
            except StationError as exc:
                assert "never tried again" in exc.message
        assert rig.device.attempts_left == rig.device.attempts - 1
        assert sum(rig.seed_writes()) == 0
        await rig.close()

    asyncio.run(scenario())


def test_job_view_carries_the_profile() -> None:
    j = job(3, state="burned", burned_serial=SERIAL, profile=7)
    assert j.as_dict()["profile"] == 7
    assert dataclasses.replace(j, profile=None).as_dict().get("profile") is None


def test_auto_sync_sets_a_drifting_molto2_by_itself(tmp_path: Path) -> None:
    async def scenario() -> None:
        cfg = dataclasses.replace(attended(), auto_sync=True)
        rig = Molto2Rig(tmp_path, cfg, clock_offset_s=-20.0)
        preload(rig, 4, "P4")
        rig.place()
        await rig.settle()
        assert rig.of(TokenMeasured)[0].auto_sync
        [done] = rig.of(ProfilesSynced)
        assert done.origin == "auto" and done.synced == 1
        assert rig.device.slots[4].sync_writes == 1 and rig.seed_writes()[4] == 0
        await rig.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("step", ("intent", BETWEEN_PROFILES, *STEPS[1:]))
def test_a_daemon_killed_at_any_step_of_a_molto2_batch_never_writes_a_profile_twice(
    tmp_path: Path, step: str
) -> None:
    """Station mode burns the three jobs in one card session, killed at ``step`` and
    restarted with the Molto2 still there: every job's intent was on disk before the
    first seed write, so each one left "burning" is settled by its profile's seed flag
    (the seed written if it had not landed, else only title and settings), and no
    profile gets a second seed."""

    async def scenario() -> None:
        rig = Molto2Rig(tmp_path, station_mode())
        rig.prov.crash_point = _crash_at(step)
        jobs = await rig.batch(3)
        rig.place()
        await rig.settle()  # the burn task died at the crash point
        on_token = {"intent": 0, BETWEEN_PROFILES: 1}.get(step, 3)
        assert rig.seed_writes()[:4] == [1] * on_token + [0] * (4 - on_token)
        again = Molto2Rig(tmp_path, station_mode())
        again.device, again.conn, again.clock = rig.device, rig.conn, rig.clock
        again.prov.recover()
        left = step in ("intent", BETWEEN_PROFILES, "written", "registry")
        assert [again.state(j) for j in jobs] == ["burning" if left else "burned"] * 3
        again.place()
        await again.settle()
        assert [again.state(j) for j in jobs] == ["burned", "burned", "burned"]
        assert [d.job.profile for d in again.of(BurnDone)] == ([0, 1, 2] if left else [])
        assert rig.seed_writes()[:4] == [1, 1, 1, 0]  # never twice, never over a seed
        assert [rig.device.slots[i].title for i in range(3)] == [
            "Svc0:user0",
            "Svc1:user1",
            "Svc2:user2",
        ]
        await rig.close()
        await again.close()

    asyncio.run(scenario())


def _crash_at(step: str) -> Callable[[str], None]:
    def crash(at: str) -> None:
        if at == step:
            raise InjectedCrash(at)

    return crash


def test_a_profile_burned_elsewhere_since_the_stop_is_left_alone(tmp_path: Path) -> None:
    """Killed before the seed write; meanwhile the CLI burned another account into that
    profile (the ledger says so): the job fails for a person, nothing is written there."""

    async def scenario() -> None:
        rig = Molto2Rig(tmp_path, station_mode())
        rig.prov.crash_point = _crash_at("intent")
        jobs = await rig.batch(2)
        rig.place()
        await rig.settle()
        preload(rig, 0, "Other")  # the CLI's burn, with its ledger row
        Ledger(tmp_path / "molto2-profiles.json").record(SERIAL, 0, "Other:x", "feedface")
        again = Molto2Rig(tmp_path, station_mode())
        again.device, again.conn, again.clock = rig.device, rig.conn, rig.clock
        again.prov.recover()
        again.place()
        await again.settle()
        assert again.state(jobs[0]) == "failed"
        job = again.queue.get(jobs[0])
        assert job is not None and "holds the seed of Other:x" in job.reason
        assert again.state(jobs[1]) == "burned"
        assert rig.seed_writes()[:3] == [0, 1, 0] and rig.device.slots[0].title == "Other"
        await rig.close()
        await again.close()

    asyncio.run(scenario())


def _collect_task_errors() -> list[dict[str, object]]:
    """Errors of tasks nobody awaited (the provisioner's consider tasks), as the loop
    reports them."""
    errors: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    return errors


def _on_first(step: str, then: Callable[[], None]) -> Callable[[str], None]:
    """A crash point that does ``then`` (once) when the first burn reaches ``step``."""
    done: list[str] = []

    def hook(at: str) -> None:
        if at == step and not done:
            done.append(at)
            then()

    return hook


def test_a_second_look_during_a_burn_does_not_resume_the_burn_in_progress(
    tmp_path: Path,
) -> None:
    """A queue change (a dropped file, another station's notice) while a job is being
    burned makes the provisioner look at the Molto2 again: that look leaves the burn in
    progress alone (no resume of it, no crashed task), and every job goes in once."""

    async def scenario() -> None:
        errors = _collect_task_errors()
        rig = Molto2Rig(tmp_path, station_mode())
        claimed: list[set[int]] = []  # what a shared queue's lease renewals would renew

        def look_again() -> None:
            claimed.append(set(rig.prov.claims))
            rig.prov.offer(MOLTO2_READER)

        rig.prov.crash_point = _on_first("intent", look_again)
        jobs = await rig.batch(2)
        rig.place()
        await rig.settle()
        gc.collect()
        assert errors == []
        assert [rig.state(j) for j in jobs] == ["burned", "burned"]
        assert [d.job.profile for d in rig.of(BurnDone)] == [0, 1]
        assert rig.seed_writes()[:3] == [1, 1, 0]
        assert [s.title for s in rig.device.slots[:2]] == ["Svc0:user0", "Svc1:user1"]
        assert not rig.of(BurnFailed)
        # The batch claimed both before its first seed write; none is left claimed.
        assert claimed == [set(jobs)] and rig.prov.claims == set()
        await rig.close()

    asyncio.run(scenario())


def test_a_second_look_after_a_refused_burn_never_touches_the_other_profile(
    tmp_path: Path,
) -> None:
    """The first burn finds profile 0 taken since the Molto2 was read (ProfileOccupied:
    the job goes back to the queue); a look queued meanwhile saw that job "burning" into
    profile 0. It must not take the other account's seed for this job's and rewrite that
    profile's title and settings: the job goes into the next free profile instead."""

    async def scenario() -> None:
        errors = _collect_task_errors()
        rig = Molto2Rig(tmp_path, station_mode())

        theirs = m.ProfileSettings(HmacAlgorithm.SHA256, 60, 8)

        def taken_meanwhile() -> None:
            rig.device.preload(0, Secret(b"another account!"), theirs, "Other")
            rig.prov.offer(MOLTO2_READER)

        rig.prov.crash_point = _on_first("intent", taken_meanwhile)
        [job_id] = await rig.batch(1)
        rig.place()
        await rig.settle()
        gc.collect()
        assert errors == []
        slot = rig.device.slots[0]
        assert (slot.title, slot.settings, slot.seed_writes) == ("Other", theirs, 0)
        assert rig.state(job_id) == "burned"
        [done] = rig.of(BurnDone)
        assert done.job.profile == 1 and rig.device.slots[1].title == "Svc0:user0"
        ledger = json.loads((tmp_path / "molto2-profiles.json").read_text())
        assert "0" not in ledger[SERIAL] and ledger[SERIAL]["1"]["account"] == "Svc0:user0"
        await rig.close()

    asyncio.run(scenario())


def test_a_molto2_is_shown_while_the_shared_registry_is_unreachable(
    tmp_path: Path, pg_server: PgServer, pg_url: str
) -> None:
    """The shared registry gone (the PostgreSQL server refuses this database's
    connections): a placed Molto2 is read and shown all the same (not recorded)."""

    async def scenario() -> None:
        db = PostgresDatabase(pg_url)
        schema.migrate(db, schema.PARTS)
        rig = Molto2Rig(tmp_path, attended())
        rig.station.store = Store(db, station="A")
        name = pg_url.split("@/", 1)[1].split("?", 1)[0]
        pg_server.psql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        pg_server.psql(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        )
        preload(rig, 2, "Kept")
        rig.place()
        await rig.settle()
        [measured] = rig.of(TokenMeasured)
        assert (measured.serial, measured.profiles_used) == (SERIAL, 1)
        await rig.close()
        db.close()

    asyncio.run(scenario())


def test_a_molto2_burn_with_another_store_key_claims_nothing(tmp_path: Path, pg_url: str) -> None:
    """A shared queue whose seeds were sealed with another station's key file: the burn
    is refused with the reason before the job is claimed (no orphan claim, nothing
    written), as a single-profile burn is."""

    async def scenario() -> None:
        db = PostgresDatabase(pg_url)
        schema.migrate(db, schema.PARTS)
        other = JobQueue(PostgresDatabase(pg_url), station="B", box=SecretBox(bytes(32)))
        seed = Secret(b"molto2-seed-0000")
        account = OtpAccount("totp", "Svc0", "user0", seed)
        [queued] = other.take("f", "f.csv", "ok", [NewJob(account)]).queued
        rig = Molto2Rig(tmp_path, attended())
        rig.queue = rig.prov.queue = JobQueue(db, station="A", box=SecretBox(bytes(range(32))))
        rig.place()
        await rig.settle()
        with pytest.raises(StationError) as refused:
            await rig.prov.burn(queued.id, SERIAL)
        assert "does not open with this station's store key" in refused.value.message
        assert "key file" in refused.value.next_step
        job = other.get(queued.id)
        assert job is not None
        assert (job.state, job.claimed_by, job.profile, job.attempts) == ("queued", "", None, 0)
        assert sum(rig.seed_writes()) == 0
        await rig.close()
        other.close()
        db.close()

    asyncio.run(scenario())
