"""Queued jobs into a Molto2's free profiles: the choice (pure) and the burn (one write).

A Molto2 holds up to 100 accounts, so a placed Molto2 takes job after job, each into
the lowest free profile. A seed is never written over another: only profiles whose
seed-present flag is clear are chosen, and the session reads the flag again before
writing. Attended mode offers each burn ("Burn Bitbucket:alice into profile 7 of
Molto2 S?"); station mode burns into free profiles without asking, a batch in one
session (:mod:`molto2_batch`). Each burn here is one :meth:`Station.write`, in the
crash-safe order of the single-profile burn: the queue
commits "job J into profile P of S" before the seed write; after it the ledger (which
account is in which profile), then the job burned (secret erased), then the
provisioning-log row.

A Molto2 pulled after a seed write was sent leaves its job "burning" with the profile:
when it is back, the profile's seed-present flag decides. Set: the seed landed, so only
the title and settings are written (the seed never twice). Clear: nothing landed, and
the seed is written then. A daemon stopped mid-burn leaves the job the same way. If the
ledger (which the CLI's burns write too) names another account in that profile, its
seed is another's: nothing is written and the job fails for a person. Only a burn that
is really interrupted is settled so: a resume reads its job again under the reader's
lock and goes ahead only while it is still "burning" into this profile of this Molto2,
claimed by this station and not being burned here right now (a second look at the
Molto2 during a burn leaves that burn alone). Claims are renewed while a burn runs, as
for single-profile burns; an interrupted one keeps no lease (see :meth:`JobQueue.interrupted`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from tokenstation.daemon.cards import (
    CardOperation,
    Presence,
    StationError,
    Written,
    settings_view,
)
from tokenstation.daemon.events import (
    BurnDone,
    BurnOutcome,
    ErrorKind,
    JobView,
    OperationKind,
    Origin,
    Outcome,
    PresenceState,
)
from tokenstation.daemon.families.molto2_ledger import Ledger, station_ledger
from tokenstation.daemon.families.molto2_settings import customer_key
from tokenstation.daemon.provisioning import steps
from tokenstation.daemon.provisioning.queue import Job
from tokenstation.daemon.registry.store import Operation
from tokenstation.daemon.token import molto2 as m
from tokenstation.daemon.token.errors import CardLost, RefusedByPolicy, TokenError, TransportError
from tokenstation.daemon.token.models import ModelTable
from tokenstation.daemon.token.molto2_session import (
    ClockNotSet,
    Molto2Session,
    ProfileOccupied,
    ProfileWrite,
    profile_clock_drift,
)
from tokenstation.daemon.token.secret import Secret
from tokenstation.daemon.token.session import Connection, HostClock
from tokenstation.daemon.token.settings import PERIODS, HmacAlgorithm, TokenSettings

if TYPE_CHECKING:
    from tokenstation.daemon.provisioning.context import BurnContext

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
        full = no_free_profile(serial)
        return ProfileChoice(None, None, False, f"{full.message}; {full.next_step}")
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


def no_free_profile(serial: str) -> StationError:
    """The refusal when every profile of the Molto2 ``serial`` holds a seed."""
    return StationError(
        ErrorKind.REFUSED,
        f"every profile of Molto2 {serial} holds a seed; a seed is never written over "
        "another, so nothing was written",
        "Delete a profile no longer needed (`tokenstation delete --profile N`) or use "
        "another token.",
    )


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
        prov: BurnContext,
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
        #: The profile asked for; None: the lowest free one when the burn starts (chosen
        #: under the reader's lock, so a look that came meanwhile never picks a stale one).
        self.wanted = job.profile if resume else profile
        self.profile = -1 if self.wanted is None else self.wanted
        self.title = ""
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
        if self.wanted is None:
            free = p.free_profiles()
            if not free:
                raise no_free_profile(p.serial)
            self.profile = free[0]
        self.title = self._title()
        if self.resume:
            entry = self._ledger().accounts(p.serial).get(self.profile, {})
            if entry and entry.get("secret_fingerprint") != self.job.fingerprint:
                self.foreign = str(entry.get("account", "another account"))
            self.job, self.seed = self._reclaim(p)  # last: nothing after it can raise
        else:
            self.job, self.seed = steps.claim_burn(self.prov, self.job.id, p.serial, self.profile)
            self.started = True
        self.prov.crash_point("intent")

    def _title(self) -> str:
        """The profile's title (issuer:account cut to 12 bytes)."""
        return profile_title(self.job, self.profile)

    def _reclaim(self, p: Presence) -> tuple[Job, Secret]:
        """A resume, under the reader's lock: the job read again, settled only while it is
        still an interrupted burn into this profile of this Molto2 (not a burn in progress
        here, not requeued, burned or claimed again meanwhile); its claim renewed again."""
        with steps.burn_refusals():
            job = self.prov.queue.get(self.job.id)
            if (
                job is None
                or job.state != "burning"
                or job.burned_serial != p.serial
                or job.profile != self.profile
                or job.id in self.prov.claims
                or (self.prov.queue.shared and job.claimed_by != self.prov.queue.station)
            ):
                raise StationError(
                    ErrorKind.REFUSED,
                    f"job {self.job.id} is no longer an interrupted burn into profile "
                    f"{self.profile} of Molto2 {p.serial}; nothing was written",
                    _SEE_QUEUE,
                )
            seed = self.prov.queue.secret(job.id)
        self.prov.claims.add(job.id)
        return job, seed

    def _ledger(self) -> Ledger:
        return station_ledger(self.prov.cfg.state_dir)  # the registry's folder

    def perform(self, conn: Connection, clock: HostClock, models: ModelTable) -> ProfileWrite:
        assert self.seed is not None
        session = self.session = Molto2Session(conn, customer_key(self.prov.cfg), clock)
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
        ledger = self._ledger()
        done = steps.burned(
            self.prov,
            self.job.id,
            p,
            lambda: ledger.record(
                p.serial, result.profile, self.job.label(), result.seed_fingerprint
            ),
        )
        self.prov.station.update_profiles(p, [read_back(result)])
        assert self.seed is not None
        how = "the seed had landed before the Molto2 was pulled; " if self.settled else ""
        return burn_done(
            p, self.origin, done, seed=self.seed, settings=self.settings, result=result, how=how
        )

    def failed(self, p: Presence, exc: StationError | TokenError) -> Written | None:
        if not self.started:
            return None  # refused before the queue or the card was touched
        if self.resume and isinstance(exc, StationError):
            return None  # the card was not touched: settled at the next placement
        seed_sent = self.resume or (
            self.session is not None and self.session.seed_sent_to is not None
        )
        return settle_failure(
            self.prov,
            p,
            self.job,
            profile=self.profile,
            exc=exc,
            origin=self.origin,
            seed_sent=seed_sent,
            resume=self.resume,
            foreign=bool(self.foreign),
            offer_next=not self.resume and self.wanted is None,
        )


def burn_done(
    p: Presence,
    origin: Origin,
    done: Job,
    *,
    seed: Secret,
    settings: m.ProfileSettings,
    result: ProfileWrite,
    how: str = "",
) -> Written:
    """The registry row and BurnDone event of job ``done`` burned into a profile (its
    bookkeeping done), with the code the profile should show now."""
    token_settings = TokenSettings(settings.hmac, settings.period)
    expected = steps.expected_hint(done, seed, token_settings, result.host_time, settings.digits)
    log.info(
        "burned job %d (%s) into profile %d of Molto2 %s (%s)",
        done.id,
        done.label(),
        result.profile,
        p.serial,
        how + origin,
    )
    event = BurnDone(
        reader=p.reader,
        serial=p.serial,
        model=p.model_name,
        origin=origin,
        job=_view(done),
        settings=settings_view(
            TokenSettings(settings.hmac, settings.period, settings.display_timeout)
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
        f"{origin}; {how}{done.label()} into profile {result.profile}",
        secret_fingerprint=done.fingerprint,
        profile=result.profile,
    )
    return Written(op, event)


def settle_failure(
    prov: BurnContext,
    p: Presence,
    job: Job,
    *,
    profile: int,
    exc: StationError | TokenError,
    origin: Origin,
    seed_sent: bool,
    resume: bool = False,
    foreign: bool = False,
    offer_next: bool = True,
) -> Written:
    """A burn of ``job`` into ``profile`` that did not complete, in the queue and the
    presence: interrupted (the Molto2 left after the seed write was sent: its seed flag
    decides when it is back), back in the queue (nothing was written) or failed for a
    person; the registry row and BurnFailed event."""
    prov.claims.discard(job.id)
    queue = prov.queue
    gone = isinstance(exc, CardLost | TransportError)
    if isinstance(exc, ClockNotSet):  # the seed is there; its clock did not take
        drift = {} if exc.drift_after_s is None else {profile: exc.drift_after_s}
        prov.station.update_profiles(p, [exc.read_back], profile_clock_drift(drift))
    if isinstance(exc, ProfileOccupied):  # taken since it was read: known now
        occupied = [i for i in p.profiles or () if i.index == profile]
        prov.station.update_profiles(p, [replace(i, seed_present=True) for i in occupied])
        if offer_next:
            prov.offer(p.reader)  # the job into the next free profile
    if gone and seed_sent:
        done = queue.interrupted(
            job.id,
            f"the Molto2 left during the burn into profile {profile} after the seed "
            "write was sent; when it is back, the profile's seed flag says whether the "
            "seed landed (then only its title and settings are written)",
        )
        outcome = BurnOutcome.INTERRUPTED
    elif not resume and (gone or isinstance(exc, StationError | RefusedByPolicy)):
        done = queue.back_to_queue(job.id, exc.message)
        outcome = BurnOutcome.REQUEUED
    else:
        uncertain = (
            f"; profile {profile} may hold this seed: check it (`tokenstation "
            "profiles`) before a retry"
            if seed_sent and not foreign
            else ""
        )
        done = queue.failed(job.id, exc.message + uncertain)
        outcome = BurnOutcome.FAILED
    return steps.burn_failed(p, origin, done, outcome, exc, profile=profile)


_SEE_QUEUE = "See the jobs and their states with `tokenstation queue list --all`."


def read_back(result: ProfileWrite) -> m.ProfileInfo:
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
    return steps.job_view(job)


class AccountBurnWrite(Molto2BurnWrite):
    """A Molto2 burn into the profile asked for (None: the lowest free one when the
    burn starts, under the reader's lock), with the caller's title when given."""

    def __init__(self, prov: BurnContext, job: Job, profile: int | None, title: str | None) -> None:
        super().__init__(prov, job, Origin.MANUAL, profile=profile)
        self.given_title = title

    def _title(self) -> str:
        """The title by today's rules: given, else issuer:account cut, else "Profile N"."""
        if self.given_title is not None:
            return self.given_title
        named = self.job.issuer or self.job.account
        return (m.fit_title(self.job.label()) if named else "") or f"Profile {self.profile}"

    async def prepare(self, p: Presence) -> None:
        if self.wanted is not None and self.wanted not in p.free_profiles():
            raise StationError(
                ErrorKind.REFUSED,
                f"profile {self.wanted} of Molto2 {p.serial} already holds a seed; it was "
                "not touched",
                "Choose a free profile (--profile next), or delete this profile's seed "
                "first with `tokenstation delete --profile N` if it is really no longer needed.",
            )
        await super().prepare(p)
