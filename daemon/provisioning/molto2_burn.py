"""Queued jobs into a Molto2's free profiles: the choice (pure) and the burn (one write).

A Molto2 holds up to 100 accounts, so a placed Molto2 takes job after job, each into
the lowest free profile. A seed is never written over another: only profiles whose
seed-present flag is clear are chosen, and the session reads the flag again before
writing. Attended mode offers each burn ("Burn Bitbucket:alice into profile 7 of
Molto2 S?"); station mode burns into free profiles without asking. Each burn is one
:meth:`Station.write`, in the crash-safe order of the single-profile burn: the queue
commits "job J into profile P of S" before the seed write; after it the ledger (which
account is in which profile), then the job burned (secret erased), then the
provisioning-log row.

A Molto2 pulled after a seed write was sent leaves its job "burning" with the profile:
when it is back, the profile's seed-present flag decides. Set: the seed landed, so only
the title and settings are written (the seed never twice). Clear: nothing landed, and
the seed is written then. A daemon stopped mid-burn leaves the job the same way. If the
ledger (which the CLI's burns write too) names another account in that profile, its
seed is another's: nothing is written and the job fails for a person.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from tokenstation.daemon.events import (
    BurnDone,
    BurnFailed,
    BurnOutcome,
    ErrorKind,
    JobView,
    OperationKind,
    Origin,
    Outcome,
    PresenceState,
)
from tokenstation.daemon.provisioning import provisioner
from tokenstation.daemon.provisioning.otpcode import expected_code
from tokenstation.daemon.provisioning.queue import Job
from tokenstation.daemon.registry.molto2_ledger import Ledger, station_ledger
from tokenstation.daemon.registry.store import Operation
from tokenstation.daemon.station import (
    CardOperation,
    Presence,
    StationError,
    Written,
    settings_view,
)
from tokenstation.daemon.token import molto2 as m
from tokenstation.daemon.token.errors import CardLost, RefusedByPolicy, TokenError, TransportError
from tokenstation.daemon.token.models import ModelTable
from tokenstation.daemon.token.molto2_session import Molto2Session, ProfileOccupied, ProfileWrite
from tokenstation.daemon.token.secret import Secret
from tokenstation.daemon.token.session import Connection, HostClock
from tokenstation.daemon.token.settings import PERIODS, HmacAlgorithm, TokenSettings

if TYPE_CHECKING:
    from tokenstation.daemon.provisioning.provisioner import Provisioner

log = logging.getLogger(__name__)

#: What a job needs to fit a Molto2 profile (the intake allows 6 digits only).
ALGORITHMS = ("SHA1", "SHA256")


@dataclass(frozen=True)
class ProfileChoice:
    """Which job goes into which free profile of a Molto2, and whether without asking."""

    job: Job | None
    profile: int | None
    automatic: bool
    reason: str  # why nothing ("" when a job was chosen)


def choose_profile_job(
    serial: str, free: list[int], waiting: list[Job], mode: str
) -> ProfileChoice:
    """Pure policy: jobs bound to this Molto2 first, then unbound ones, oldest first; into
    the lowest free profile only (never a profile holding a seed); station mode without
    asking, attended mode as an offer."""
    usable = [j for j in waiting if j.algorithm in ALGORITHMS and j.period in PERIODS]
    bound = [j for j in usable if j.serial == serial]
    candidates = bound or [j for j in usable if not j.serial]
    if not candidates:
        return ProfileChoice(None, None, False, "no job for this Molto2")
    if not free:
        return ProfileChoice(
            None,
            None,
            False,
            f"every profile of Molto2 {serial} holds a seed; a seed is never written over "
            "another (delete one with `tokenstation delete --profile N`, or use another token)",
        )
    return ProfileChoice(candidates[0], free[0], mode == "station", "")


def profile_title(job: Job, profile: int) -> str:
    """The profile's title: issuer:account cut to 12 UTF-8 bytes on a character boundary."""
    return m.fit_title(job.label()) or f"Profile {profile}"


def offer_question(job: Job, profile: int, serial: str) -> str:
    """The attended offer in words."""
    return f"Burn {job.label()} into profile {profile} of Molto2 {serial}?"


def profile_settings(job: Job, display_timeout: int) -> m.ProfileSettings:
    """The profile settings a job burns with (6 digits: what the intake accepts)."""
    return m.ProfileSettings(HmacAlgorithm.parse(job.algorithm), job.period, 6, display_timeout)


async def consider(prov: Provisioner, p: Presence, waiting: list[Job]) -> None:
    """A measured Molto2 and the waiting jobs: settle an interrupted burn, then offer or
    (station mode) burn the next job into the next free profile."""
    for job in prov.queue.interrupted_burns(p.serial):
        try:
            await prov.station.write(p, Molto2BurnWrite(prov, job, Origin.STATION, resume=True))
        except StationError as exc:
            log.warning("settling job %d on Molto2 %s: %s", job.id, p.serial, exc.message)
            if prov.station.readers.get(p.reader) is not p:
                return  # it left: the rest waits for the next placement
    choice = choose_profile_job(p.serial, p.free_profiles(), waiting, prov.cfg.mode)
    if choice.job is None or choice.profile is None:
        if waiting:
            log.info("no burn for Molto2 %s: %s", p.serial, choice.reason)
        return
    await prov.burn_or_offer(
        p,
        choice.job,
        automatic=choice.automatic,
        question=offer_question(choice.job, choice.profile, p.serial),
        profile=choice.profile,
    )


def burn_write(prov: Provisioner, p: Presence, job: Job, origin: Origin) -> Molto2BurnWrite:
    """The write of ``job`` into the lowest free profile of the Molto2 ``p`` (or a refusal)."""
    free = p.free_profiles()
    if not free:
        raise StationError(
            ErrorKind.REFUSED,
            f"every profile of Molto2 {p.serial} holds a seed; nothing was written",
            "Delete a profile no longer needed (`tokenstation delete --profile N`) or use "
            "another token.",
        )
    return Molto2BurnWrite(prov, job, origin, profile=free[0])


class Molto2BurnWrite(CardOperation[ProfileWrite]):
    """One job into one Molto2 profile, in crash-safe order (see the module docstring).

    ``resume``: the job is already "burning" into ``job.profile`` (its Molto2 was pulled
    after the seed write was sent): the profile's seed-present flag decides whether the
    seed or only the title and settings are written.
    """

    kind = OperationKind.BURN
    busy = PresenceState.BURNING
    wait = True

    def __init__(
        self,
        prov: Provisioner,
        job: Job,
        origin: Origin,
        *,
        profile: int | None = None,
        resume: bool = False,
    ) -> None:
        self.prov = prov
        self.job = job
        self.origin = origin
        self.resume = resume
        target = job.profile if resume else profile
        assert target is not None
        self.profile = target
        self.title = profile_title(job, target)
        self.settings = profile_settings(job, prov.cfg.token_defaults.display_timeout)
        self.seed: Secret | None = None
        self.serial = ""
        self.started = resume
        self.session: Molto2Session | None = None
        self.settled = False  # resume: the seed had landed; title and settings written
        self.foreign = ""  # resume: the ledger names another account in the profile

    async def prepare(self, p: Presence) -> None:
        if self.prov.paused and self.origin == Origin.STATION and not self.resume:
            raise StationError(ErrorKind.REFUSED, "the queue is paused", "Resume it first.")
        self.serial = p.serial
        if not self.resume:
            try:
                self.job = self.prov.queue.start_burn(self.job.id, p.serial, self.profile)
            except ValueError as exc:
                raise StationError(ErrorKind.REFUSED, str(exc), _SEE_QUEUE) from None
            self.started = True
        self.seed = self.prov.queue.secret(self.job.id)
        if self.resume:
            entry = self._ledger().accounts(p.serial).get(self.profile, {})
            if entry and entry.get("secret_fingerprint") != self.job.fingerprint:
                self.foreign = str(entry.get("account", "another account"))
        self.prov.crash_point("intent")

    def _ledger(self) -> Ledger:
        return station_ledger(self.prov.cfg.state_dir)  # the registry's folder

    def perform(self, conn: Connection, clock: HostClock, models: ModelTable) -> ProfileWrite:
        assert self.seed is not None
        session = self.session = Molto2Session(conn, self.prov.cfg.molto2_customer_key, clock)
        if self.resume and session.read_profile(self.profile).seed_present:
            if self.foreign:
                raise RefusedByPolicy(
                    f"profile {self.profile} of Molto2 {self.serial} holds the seed of "
                    f"{self.foreign} (burned since); nothing was written"
                )
            self.settled = True
            return session.finish(
                self.profile,
                self.settings,
                self.title,
                self.seed.fingerprint,
                expect_serial=self.serial,
            )
        return session.burn(
            self.profile, self.seed, self.settings, self.title, expect_serial=self.serial
        )

    def succeeded(self, p: Presence, result: ProfileWrite) -> Written:
        crash = self.prov.crash_point
        crash("written")
        self._ledger().record(p.serial, result.profile, self.job.label(), result.seed_fingerprint)
        crash("registry")
        done = self.prov.queue.burned(self.job.id, p.serial)
        crash("burned")
        self.prov.log_provisioning(done, p)
        crash("logged")
        self.prov.station.update_profiles(p, [_read_back(result)])
        assert self.seed is not None
        expected: tuple[str, float] | None = None
        try:
            token_settings = TokenSettings(self.settings.hmac, self.settings.period)
            expected = expected_code(
                self.seed, token_settings, result.host_time, self.settings.digits
            )
        except Exception:  # the burn stands; only the hint is missing
            log.exception("could not compute the expected code for job %d", done.id)
        how = "the seed had landed before the Molto2 was pulled; " if self.settled else ""
        log.info(
            "burned job %d (%s) into profile %d of Molto2 %s (%s)",
            done.id,
            done.label(),
            result.profile,
            p.serial,
            how + self.origin,
        )
        event = BurnDone(
            reader=p.reader,
            serial=p.serial,
            model=p.model_name,
            origin=self.origin,
            job=_view(done),
            settings=settings_view(
                TokenSettings(
                    self.settings.hmac, self.settings.period, self.settings.display_timeout
                )
            ),
            power_cycle_required=False,
            token_time=result.written_time,
            expected_code=expected[0] if expected else None,
            expected_code_valid_until=expected[1] if expected else None,
        )
        op = Operation(
            p.serial,
            result.host_time,
            OperationKind.BURN,
            Outcome.OK,
            f"{self.origin}; {how}{done.label()} into profile {result.profile}",
            secret_fingerprint=done.fingerprint,
            profile=result.profile,
        )
        return Written(op, event)

    def failed(self, p: Presence, exc: StationError | TokenError) -> Written | None:
        if not self.started:
            return None  # refused before the queue or the card was touched
        if self.resume and isinstance(exc, StationError):
            return None  # the card was not touched: settled at the next placement
        queue = self.prov.queue
        gone = isinstance(exc, CardLost | TransportError)
        seed_sent = self.resume or (
            self.session is not None and self.session.seed_sent_to is not None
        )
        if isinstance(exc, ProfileOccupied):
            occupied = [i for i in p.profiles or () if i.index == self.profile]
            self.prov.station.update_profiles(p, [replace(i, seed_present=True) for i in occupied])
        if gone and seed_sent:
            job = queue.interrupted(
                self.job.id,
                f"the Molto2 left during the burn into profile {self.profile} after the seed "
                "write was sent; when it is back, the profile's seed flag says whether the "
                "seed landed (then only its title and settings are written)",
            )
            outcome = BurnOutcome.INTERRUPTED
        elif not self.resume and (gone or isinstance(exc, StationError | RefusedByPolicy)):
            job = queue.back_to_queue(self.job.id, exc.message)
            outcome = BurnOutcome.REQUEUED
        else:
            uncertain = (
                f"; profile {self.profile} may hold this seed: check it (`tokenstation "
                "profiles`) before a retry"
                if seed_sent and not self.foreign
                else ""
            )
            job = queue.failed(self.job.id, exc.message + uncertain)
            outcome = BurnOutcome.FAILED
        op = Operation(
            p.serial,
            time.time(),
            OperationKind.BURN,
            Outcome.FAILED,
            f"profile {self.profile}: {exc.message}",
            secret_fingerprint=job.fingerprint,
            profile=self.profile,
        )
        event = BurnFailed(
            reader=p.reader,
            serial=p.serial,
            model=p.model_name,
            origin=self.origin,
            job=_view(job),
            outcome=outcome,
            message=exc.message,
            next_step=exc.next_step,
        )
        return Written(op, event)


_SEE_QUEUE = "See the jobs and their states with `tokenstation queue list --all`."


def _read_back(result: ProfileWrite) -> m.ProfileInfo:
    """The profile as the burn's read-back found it."""
    s = result.settings
    return m.ProfileInfo(
        index=result.profile,
        flag=0,
        title=result.title,
        time_a=result.written_time,
        time_b=result.written_time,
        algorithm=int(s.hmac),
        period=s.period,
        digits=s.digits,
        seed_present=True,
    )


def _view(job: Job) -> JobView:
    return provisioner.job_view(job)
