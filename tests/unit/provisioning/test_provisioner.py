"""The Provisioner in-process: the in-process simulator behind the injectable connect.

Files are queued through the real intake (``Provisioner.ingest``: a descriptor read,
judged, queued), burns go through the station's one write path onto a SimulatedToken,
and a restart is a new Station and Provisioner over the same database files, as after
a real stop.
"""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path
from typing import Any

import pytest

from tokenstation.daemon.config import Config, DefaultSettings
from tokenstation.daemon.events import (
    BurnDone,
    BurnOffered,
    ErrorKind,
    JobState,
    QueueState,
)
from tokenstation.daemon.station import StationError

from station_rig import C302, ProvRig

OTHER = "86596320000002"
URI = "otpauth://totp/Bitbucket:alice?secret=JBSWY3DPEHPK3PXP&issuer=Bitbucket"
URI2 = "otpauth://totp/GitHub:bob?secret=KRUGKIDROVUWG2ZAMJZG653OEBTG66BANJ2W24DTEBXXMZLS&issuer=GitHub"
STEPS = ("intent", "written", "registry", "burned", "logged")


def attended() -> Config:
    return Config(token_defaults=DefaultSettings(confirmed=True))


def station_mode() -> Config:
    return Config(token_defaults=DefaultSettings(confirmed=True), mode="station")


def run(scenario: object) -> None:
    asyncio.run(scenario)  # type: ignore[arg-type]


def test_a_waiting_job_is_offered_and_a_yes_burns_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        rig = ProvRig(tmp_path, attended())
        job = await rig.add("bitbucket.txt", URI)
        rig.place()
        offer = await rig.wait_for(BurnOffered)
        assert offer.serial == C302 and offer.job.id == job and offer.job.label == "Bitbucket:alice"
        assert rig.token.seed_writes == 0  # attended: nothing without a yes
        done = await rig.prov.burn(job, C302)
        assert rig.of(BurnDone) == [done]
        snap = rig.token.snapshot()
        assert snap["seed_fingerprint"] == done.job.secret_fingerprint
        assert done.expected_code == snap["code_after_power_cycle"]
        assert rig.state(job) == JobState.BURNED
        assert rig.store.token(C302).provisioned  # type: ignore[union-attr]
        assert [op.outcome for op in rig.store.operations(C302)] == ["ok"]
        assert [r[2] for r in rig.log_rows()] == [C302]
        assert rig.of(QueueState)[-1].length == 0
        await rig.close()

    run(scenario())


def test_skip_is_remembered_while_the_token_stays(tmp_path: Path) -> None:
    async def scenario() -> None:
        rig = ProvRig(tmp_path, attended())
        job = await rig.add("bitbucket.txt", URI)
        rig.place()
        await rig.wait_for(BurnOffered)
        rig.prov.skip(job, C302)
        await rig.settle()
        assert len(rig.of(BurnOffered)) == 1
        rig.remove()
        rig.place()  # placed again: a new presence, offered again
        await rig.wait_for(BurnOffered, 2)
        assert rig.state(job) == JobState.QUEUED and rig.token.seed_writes == 0
        await rig.close()

    run(scenario())


def test_pause_stops_offers_and_resume_offers_to_the_token_present(tmp_path: Path) -> None:
    async def scenario() -> None:
        rig = ProvRig(tmp_path, attended())
        rig.prov.set_paused(True)
        assert rig.of(QueueState)[-1].paused is True
        await rig.add("bitbucket.txt", URI)
        rig.place()
        await rig.settle()  # the measurement has ended
        assert rig.of(BurnOffered) == []
        rig.prov.set_paused(False)
        offer = await rig.wait_for(BurnOffered)
        assert offer.serial == C302
        assert rig.prov.status()["paused"] is False

    run(scenario())


def test_remove_erases_the_secret_and_a_second_remove_is_bad_input(tmp_path: Path) -> None:
    async def scenario() -> None:
        rig = ProvRig(tmp_path, attended())
        job = await rig.add("bitbucket.txt", URI)
        removed = rig.prov.remove(job)
        assert removed.state == "removed" and not removed.has_secret
        assert rig.of(QueueState)[-1].length == 0
        with pytest.raises(StationError) as refused:
            rig.prov.remove(job)
        assert (
            refused.value.kind == ErrorKind.INVALID
        )  # a removed job: bad input, not a safety refusal
        await rig.close()

    run(scenario())


def test_station_mode_burns_fresh_and_bound_tokens_never_over_a_provisioned_one(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        rig = ProvRig(tmp_path, station_mode())
        first = await rig.add("bitbucket.txt", URI)
        rig.place()
        await rig.wait_for(BurnDone)
        assert rig.state(first) == JobState.BURNED and rig.token.seed_writes == 1
        # Another unbound job and the same (now provisioned) token: left alone.
        second = await rig.add("github.txt", URI2)
        rig.remove()
        rig.place()
        await rig.settle()
        assert rig.token.seed_writes == 1 and rig.state(second) == JobState.QUEUED
        # A job bound to this token by its file name is burned onto it.
        bound = await rig.add(f"{C302}.txt", URI.replace("alice", "carol").replace("JBSW", "MFRG"))
        rig.remove()
        rig.place()
        await rig.wait_for(BurnDone, 2)
        assert rig.state(bound) == JobState.BURNED and rig.token.seed_writes == 2
        assert rig.state(second) == JobState.QUEUED
        await rig.close()

    run(scenario())


def test_a_burst_of_files_is_counted_a_few_times_not_once_per_file(tmp_path: Path) -> None:
    """200 files taken at once beside a provisioned token: the loop counts the queue a
    few times (each count waits for the file threads' turn with the queue; once per file
    it kept the bus waiting seconds), never reads the whole queue for a token station
    mode will not burn, and the last QueueState says how many wait."""

    async def scenario() -> None:
        rig = ProvRig(tmp_path, station_mode())
        await rig.add("first.txt", URI)
        rig.place()
        await rig.wait_for(BurnDone)
        calls = {"tally": 0, "jobs": 0}
        for name in calls:
            real = getattr(rig.queue, name)

            def counted(*a: object, _real: Any = real, _name: str = name) -> Any:
                calls[_name] += 1
                return _real(*a)

            setattr(rig.queue, name, counted)
        seeds = [base64.b32encode(f"burst-seed-{i:04d}-abcdef".encode()) for i in range(200)]
        texts = [
            f"otpauth://totp/user{i}?secret={seed.decode()}&issuer=Burst"
            for i, seed in enumerate(seeds)
        ]
        await asyncio.gather(*(rig.add(f"user{i}.txt", t) for i, t in enumerate(texts)))
        await asyncio.sleep(0.2)  # the trailing count of the burst
        await rig.settle()
        assert rig.of(QueueState)[-1].length == 200
        assert rig.token.seed_writes == 1  # the provisioned token is left alone
        assert 1 <= calls["tally"] <= 40, calls
        assert calls["jobs"] == 0, calls
        await rig.close()

    run(scenario())


@pytest.mark.parametrize("step", STEPS)
def test_a_crash_at_any_step_of_a_burn_never_leads_to_a_second_write(
    tmp_path: Path, step: str
) -> None:
    """Station mode, killed at ``step`` of a burn, restarted with another job waiting."""

    async def scenario() -> None:
        rig = ProvRig(tmp_path, station_mode(), crash_at=step)
        job = await rig.add("bitbucket.txt", URI)
        rig.place()
        await rig.settle()  # the burn task died at the crash point
        written = rig.token.seed_writes
        assert written == (0 if step == "intent" else 1)
        assert BurnDone not in rig.kinds()
        # The restart: same database files, same token still on the reader.
        again = ProvRig(tmp_path, station_mode())
        again.clock, again.token, again.conn = rig.clock, rig.token, rig.conn
        again.prov.recover()
        expect = JobState.FAILED if step in ("intent", "written", "registry") else JobState.BURNED
        assert again.state(job) == expect
        if expect == JobState.FAILED:
            assert "may or may not hold the seed" in again.queue.get(job).reason  # type: ignore[union-attr]
        assert again.store.token(C302).provisioned  # type: ignore[union-attr]
        other = await again.add("github.txt", URI2)
        again.place()
        await again.settle()
        assert rig.token.seed_writes == written  # nothing written again without a person
        assert again.state(other) == JobState.QUEUED
        assert BurnDone not in again.kinds()
        if expect == JobState.FAILED:
            # A person decides: retry puts it back, and attended burning is a choice.
            assert again.prov.retry(job).state == "queued"
        await rig.close()
        await again.close()

    run(scenario())


# -- one record and one duplicate wording on every path ---------------------------------

CAROL = "otpauth://totp/Acme:carol?secret=JBSWY3DPEHPK3PXP&issuer=Acme"
NEWPERSON = "otpauth://totp/Zeta:newperson?secret=JBSWY3DPEHPK3PXP&issuer=Zeta"


async def _burn_account(rig: ProvRig, text: str, serial: str = C302, **single: object) -> BurnDone:
    from tokenstation.daemon.provisioning.account import SingleOptions, burn_account

    fd = os.memfd_create("account", os.MFD_CLOEXEC)
    os.write(fd, f"# {os.urandom(4).hex()}\n{text}\n".encode())  # a nonce, as the CLI sends
    os.lseek(fd, 0, os.SEEK_SET)
    return await burn_account(rig.prov, fd, "account.txt", serial, single=SingleOptions(**single))  # type: ignore[arg-type]


def test_a_duplicate_file_names_the_job_holding_the_secret(tmp_path: Path) -> None:
    async def scenario() -> None:
        rig = ProvRig(tmp_path, attended())
        carol = await rig.add("carol.txt", CAROL)
        path = tmp_path / "newperson.txt"
        path.write_text(NEWPERSON + "\n")
        taken = await rig.prov.intake.ingest(os.open(path, os.O_RDONLY), "newperson.txt")
        assert taken.queued == ()
        assert taken.duplicates == (f"job {carol}, Acme:carol (queued)",)
        assert f"already held by job {carol}, Acme:carol (queued)" in taken.reason
        assert "Zeta" not in taken.reason
        await rig.close()

    run(scenario())


def test_a_burn_through_the_daemon_refused_as_duplicate_names_the_holder(tmp_path: Path) -> None:
    async def scenario() -> None:
        rig = ProvRig(tmp_path, attended())
        carol = await rig.add("carol.txt", CAROL)
        rig.place()
        await rig.settle()
        with pytest.raises(StationError) as refused:
            await _burn_account(rig, NEWPERSON)
        assert f"already held by job {carol}, Acme:carol (queued)" in refused.value.message
        assert "newperson" not in refused.value.message
        assert rig.token.seed_writes == 0
        assert [j.label() for j in rig.queue.jobs(["queued"])] == ["Acme:carol"]
        await rig.close()

    run(scenario())


def test_a_cli_burn_through_the_daemon_is_recorded_and_refused_over_a_burned_token(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        rig = ProvRig(tmp_path, station_mode())
        rig.place()
        await rig.settle()
        done = await _burn_account(rig, CAROL, display_timeout=60)
        assert done.origin == "manual" and done.settings.display_timeout == 60
        assert rig.token.seed_writes == 1
        record = rig.store.token(C302)
        assert record is not None and record.provisioned
        assert [(op.kind, op.outcome) for op in rig.store.operations(C302)] == [("burn", "ok")]
        assert [r[2] for r in rig.log_rows()] == [C302]
        # Not told the token was burned (it was, meanwhile): refused, nothing written.
        with pytest.raises(StationError) as refused:
            await _burn_account(rig, URI2)
        assert refused.value.kind == ErrorKind.REFUSED and "burned before" in refused.value.message
        assert rig.token.seed_writes == 1 and rig.queue.jobs(["queued"]) == []
        # Told, and asked to replace it: burned.
        await _burn_account(rig, URI2, replace=True)
        assert rig.token.seed_writes == 2
        await rig.close()

    run(scenario())


def test_station_mode_never_burns_over_a_token_a_direct_cli_burn_recorded(tmp_path: Path) -> None:
    from tokenstation.daemon.registry import writes
    from tokenstation.daemon.token.settings import TokenSettings

    async def scenario() -> None:
        rig = ProvRig(tmp_path, station_mode())
        # What `tokenstation burn` with no daemon leaves (cli/direct_record.py).
        rig.store.seen(C302, "C302-i", 1.0)
        rig.store.record_operation(
            writes.burned(
                rig.store, C302, TokenSettings(), 1.0, detail="command line", fingerprint="ab"
            )
        )
        job = await rig.add("bitbucket.txt", URI)
        rig.place()
        await rig.settle()
        assert rig.token.seed_writes == 0 and rig.state(job) == JobState.QUEUED
        await rig.close()

    run(scenario())
