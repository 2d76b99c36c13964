"""A placed Molto2 and the queue: settle interrupted burns, then (station mode) burn the
waiting jobs into its free profiles in one card session, or (attended) offer the next.

Station mode's batch is one :meth:`Station.write` and one login: every job's intent
("job J into profile P of S") is committed together before the first seed write, then
seed, title and settings go into each profile in turn, each read back; after the
session the ledger, the jobs burned (secrets erased) and their provisioning-log rows,
each step once for the batch. The crash-safe order of a single burn holds for each job:
nothing is recorded as burned before its seed is on the token, and no seed is written
without its intent on disk. A stop (or kill -9) anywhere in the batch leaves its jobs
"burning" into their profiles, and the resume of :mod:`molto2_burn` settles each at the
next placement by its profile's seed flag: set, only the title and settings are written
(never the seed twice); clear, the seed is written then. A Molto2 pulled mid-batch: the
profiles done are recorded as burned, the one in progress is interrupted (or back in the
queue if its seed was not sent), the rest go back to the queue untouched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tokenstation.daemon.cards import CardOperation, Presence, StationError, Written
from tokenstation.daemon.events import ErrorKind, OperationKind, Origin, PresenceState
from tokenstation.daemon.families.molto2_burn import (
    ALGORITHMS,
    Molto2BurnWrite,
    burn_done,
    choose_profile_job,
    no_free_profile,
    offer_question,
    profile_settings,
    profile_title,
    read_back,
    settle_failure,
)
from tokenstation.daemon.families.molto2_ledger import station_ledger
from tokenstation.daemon.families.molto2_settings import customer_key
from tokenstation.daemon.provisioning import steps
from tokenstation.daemon.provisioning.queue import Job
from tokenstation.daemon.storage.database import StoreUnavailable
from tokenstation.daemon.token import molto2 as m
from tokenstation.daemon.token.errors import TokenError
from tokenstation.daemon.token.models import ModelTable
from tokenstation.daemon.token.molto2_session import Molto2Session, ProfileWrite
from tokenstation.daemon.token.secret import Secret
from tokenstation.daemon.token.session import Connection, HostClock
from tokenstation.daemon.token.settings import PERIODS

if TYPE_CHECKING:
    from tokenstation.daemon.provisioning.context import BurnContext

log = logging.getLogger(__name__)

#: The crash point after each profile of a batch is written and read back (the tests
#: stop there at the first one: the batch half on the token, nothing recorded yet).
BETWEEN_PROFILES = "profile"


async def consider(prov: BurnContext, p: Presence, waiting: list[Job]) -> None:
    """A measured Molto2 and the waiting jobs: settle an interrupted burn, then burn the
    waiting jobs into the free profiles (station mode) or offer the next one."""
    for job in prov.queue.interrupted_burns(p.serial):
        if job.id in prov.claims:
            continue  # a burn in progress here (this look came meanwhile), not interrupted
        try:
            await prov.station.write(p, Molto2BurnWrite(prov, job, Origin.STATION, resume=True))
        except StationError as exc:
            log.warning("settling job %d on Molto2 %s: %s", job.id, p.serial, exc.message)
            if prov.station.readers.get(p.reader) is not p:
                return  # it left: the rest waits for the next placement
        except StoreUnavailable:
            raise  # the provisioner waits for the shared database
        except Exception:  # a bug: logged, and this look ends (the task never crashes)
            log.exception("settling job %d on Molto2 %s failed", job.id, p.serial)
            return
    free = p.free_profiles()
    choice = choose_profile_job(p.serial, free, waiting, prov.cfg.mode)
    if choice.job is None or choice.profile is None:
        if waiting:
            log.info("no burn for Molto2 %s: %s", p.serial, choice.reason)
        return
    try:
        if choice.automatic:
            await burn_batch(prov, p, batch_jobs(p.serial, free, waiting))
            return
        await prov.burn_or_offer(
            p,
            choice.job,
            automatic=False,
            question=offer_question(choice.job, choice.profile, p.serial),
            profile=choice.profile,
        )
    except StoreUnavailable:
        raise
    except Exception:  # a bug: logged, never a crashed task
        log.exception("burning job %d into Molto2 %s failed", choice.job.id, p.serial)


def batch_jobs(serial: str, free: list[int], waiting: list[Job]) -> list[Job]:
    """Pure policy: the jobs a batch takes, in the order :func:`choose_profile_job` would
    take them one by one (bound to this Molto2 first, then unbound ones, oldest first),
    as many as there are free profiles."""
    usable = [j for j in waiting if j.algorithm in ALGORITHMS and j.period in PERIODS]
    bound = [j for j in usable if j.serial == serial]
    return (bound or [j for j in usable if not j.serial])[: len(free)]


async def burn_batch(prov: BurnContext, p: Presence, jobs: list[Job]) -> None:
    """Station mode: ``jobs`` into the free profiles of ``p`` in one card session; then
    the next look (more jobs may wait than this batch took)."""
    try:
        await prov.station.write(p, Molto2BatchWrite(prov, jobs))
    except StationError as exc:
        log.warning("station-mode burn into Molto2 %s: %s", p.serial, exc.message)
        return
    finally:
        prov.queue_changed(offer=False)
    prov.offer(p.reader)


@dataclass(frozen=True)
class _Claimed:
    """A job of the batch, claimed into its profile, with what its burn writes."""

    job: Job
    seed: Secret
    profile: int
    title: str
    settings: m.ProfileSettings


class Molto2BatchWrite(CardOperation[list[ProfileWrite]]):
    """Consecutive jobs into a Molto2's free profiles in one session (see the module
    docstring for the order and what a stop leaves)."""

    kind = OperationKind.BURN
    busy = PresenceState.BURNING
    wait = True

    def __init__(self, prov: BurnContext, jobs: list[Job]) -> None:
        self.prov = prov
        self.jobs = jobs
        self.claimed: list[_Claimed] = []
        #: The profiles written and read back so far (a failure keeps those done).
        self.results: list[ProfileWrite] = []
        self.session: Molto2Session | None = None
        self.serial = ""

    async def prepare(self, p: Presence) -> None:
        if self.prov.paused:
            raise StationError(ErrorKind.REFUSED, "the queue is paused", "Resume it first.")
        free = p.free_profiles()  # as read under the reader's lock
        if not free:
            raise no_free_profile(p.serial)
        timeout = self.prov.cfg.token_defaults.display_timeout
        claimed = steps.claim_batch(self.prov, [j.id for j in self.jobs], p.serial, free)
        self.serial = p.serial
        self.claimed = [  # claimed in order into the free profiles, lowest first
            _Claimed(
                job, seed, free[i], profile_title(job, free[i]), profile_settings(job, timeout)
            )
            for i, (job, seed) in enumerate(claimed)
        ]
        self.prov.crash_point("intent")

    def perform(self, conn: Connection, clock: HostClock, models: ModelTable) -> list[ProfileWrite]:
        session = self.session = Molto2Session(conn, customer_key(self.prov.cfg), clock)
        for c in self.claimed:
            self.results.append(
                session.burn(c.profile, c.seed, c.settings, c.title, expect_serial=self.serial)
            )
            self.prov.crash_point(BETWEEN_PROFILES)  # a stop with the batch half on the token
        return self.results

    def succeeded(self, p: Presence, result: list[ProfileWrite]) -> list[Written]:
        return self._done(p)

    def _done(self, p: Presence) -> list[Written]:
        """The bookkeeping of the profiles written: the ledger, the jobs burned, the log
        rows (each once for all), the presence's profiles; a BurnDone for each."""
        if not self.results:
            return []
        done = self.claimed[: len(self.results)]
        ledger = station_ledger(self.prov.cfg.state_dir)
        burned = steps.burned_batch(
            self.prov,
            [c.job.id for c in done],
            p,
            lambda: ledger.record_many(
                p.serial,
                [
                    (r.profile, c.job.label(), r.seed_fingerprint)
                    for c, r in zip(done, self.results, strict=True)
                ],
            ),
        )
        self.prov.station.update_profiles(p, [read_back(r) for r in self.results])
        return [
            burn_done(p, Origin.STATION, job, seed=c.seed, settings=c.settings, result=r)
            for job, c, r in zip(burned, done, self.results, strict=True)
        ]

    def failed(self, p: Presence, exc: StationError | TokenError) -> list[Written] | None:
        if not self.claimed:
            return None  # refused before the queue or the card was touched
        written = self._done(p)
        at = len(self.results)
        if at < len(self.claimed):  # the job in progress when it failed
            c = self.claimed[at]
            sent = self.session is not None and self.session.seed_sent_to == c.profile
            written.append(
                settle_failure(
                    self.prov,
                    p,
                    c.job,
                    profile=c.profile,
                    exc=exc,
                    origin=Origin.STATION,
                    seed_sent=sent,
                )
            )
        for c in self.claimed[at + 1 :]:  # never touched: back in the queue, unchanged
            self.prov.claims.discard(c.job.id)
            self.prov.queue.back_to_queue(
                c.job.id,
                f"not burned: the batch into Molto2 {p.serial} stopped at profile "
                f"{self.claimed[at].profile} ({exc.message})",
            )
        return written
