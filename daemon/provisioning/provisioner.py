"""Drop-a-QR provisioning: files in, burn jobs queued, jobs burned onto presented tokens.

A feature beside clock sync: subscribes to the station's events, reads its presences
and writes cards through the station's one write path; it owns the queue and its pause.
Files become jobs in :mod:`intake_service` (its own part, which this one starts and
tells when the shared database is back). When a token is measured and a job waits, attended mode
offers the burn (BurnOffered); station mode burns at once, but only onto the token a
job is bound to or onto a token this station never provisioned.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from tokenstation.daemon import faults
from tokenstation.daemon.config import Config
from tokenstation.daemon.events import (
    BurnDone,
    BurnOffered,
    ErrorKind,
    Event,
    OperationKind,
    Origin,
    QueueState,
    TokenMeasured,
)
from tokenstation.daemon.families.table import family_of
from tokenstation.daemon.faults import CrashPoint
from tokenstation.daemon.handover.keeper import Keeper
from tokenstation.daemon.handover.pusher import Pusher
from tokenstation.daemon.provisioning import provlog
from tokenstation.daemon.provisioning.away import AwayBurn, AwayBurns
from tokenstation.daemon.provisioning.choice import CANDIDATES, choose_job, more_jobs_could_help
from tokenstation.daemon.provisioning.coalescer import Coalescer
from tokenstation.daemon.provisioning.intake_service import FileIntake
from tokenstation.daemon.provisioning.queue import Job, JobQueue
from tokenstation.daemon.provisioning.shared import SharedQueue
from tokenstation.daemon.provisioning.steps import SEE_QUEUE, burn_done_row, job_view
from tokenstation.daemon.registry import writes
from tokenstation.daemon.station import (
    Presence,
    Station,
    StationError,
)
from tokenstation.daemon.storage.database import StoreUnavailable
from tokenstation.daemon.token.settings import HmacAlgorithm, TokenSettings
from tokenstation.daemon.xdg import private_dir

log = logging.getLogger(__name__)


class Provisioner:
    """The drop folder's consumer and the burn queue's driver.

    Owns: the burn queue (``JobQueue``: jobs, their secrets, the intent of a running
    burn), whether the queue is paused, which offers were skipped, the drop folder's
    watch mode and the provisioning log. Reads the station's presences and writes cards
    through :meth:`Station.write`.
    """

    def __init__(
        self,
        station: Station,
        queue: JobQueue,
        cfg: Config,
        *,
        drop_folder: Path,
        log_path: Path,
        loop: asyncio.AbstractEventLoop,
        crash_point: CrashPoint = faults.crash_point,
    ) -> None:
        self.station = station
        self.queue = queue
        self.cfg = cfg
        self.log_path = log_path
        self.loop = loop
        self.paused = False
        self.crash_point = crash_point
        self._skipped: set[tuple[int, str, int]] = set()  # (job, reader, generation)
        self._to_consider: set[str] = set()  # readers whose consideration has not started
        #: Files whose one job a caller burns itself (BurnAccount): never offered meanwhile.
        self.held: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.claims: set[int] = set()  # jobs this station claimed and is burning now
        #: The queue's counts as last read (-1: never read yet): counted at each queue
        #: change (the queue's own, and the other stations' NOTIFY), never per event, so
        #: the bus answers from them while the shared database is away.
        self.waiting = -1
        self.failed_count = -1
        self.handover: dict[str, int] | None = None
        self.counted_at: float | None = None
        #: This station's own queue changes (a file's jobs, a burn's steps; any thread),
        #: counted on the loop: one count for a burst of them, the last after the last.
        self._own_changes = Coalescer(loop, self._recount)
        #: Files whose jobs were queued (file threads): one offer to the tokens for a burst.
        self._new_jobs = Coalescer(loop, lambda _what: self.offer_all())
        queue.on_change = self._own_changes.poke
        #: Burns the shared database could not record, kept until it is back; their jobs
        #: stay claimed (renewed) by this station meanwhile.
        self.away = AwayBurns(log_path.with_name("away-burns.json"))
        self.claims.update(b.job_id for b in self.away.pending())
        #: False while recovery at start waits for the shared database (see recover).
        self.recovered = True
        self.keeper = Keeper(queue, cfg.handover.keep_days, loop)
        self.pusher = Pusher(queue, cfg.handover.privacyidea, loop)
        self.shared: SharedQueue | None = None
        if queue.shared:
            self.shared = SharedQueue(self, loop)
        #: Files in, jobs out (the drop folder and IngestFile): its own feature.
        self.intake = FileIntake(
            queue,
            cfg,
            station,
            drop_folder,
            loop,
            queued=self._files_queued,
            lost=self._lost,
        )
        station.subscribe(self._on_event)
        if cfg.mode == "station":  # a burn at once needs no precise drift before it
            station.burns_at_once = self.burns_at_once

    def recover(self) -> list[Job]:
        """At start-up (single instance assured): settle burns a stop interrupted."""
        try:
            self.settle_away()  # burned while the database was away: never "interrupted"
            stuck = self.queue.recover(keep=set(self.claims))
            self.settle_interrupted(stuck, "the daemon stopped")
        except StoreUnavailable as exc:  # started while it is away: once it answers
            log.info("recovery waits for the shared database: %s", exc)
            self.recovered = False
            return []
        self.recovered = True
        return stuck

    def settle_interrupted(self, stuck: list[Job], why: str) -> None:
        """Burns that were interrupted (a stop here, or a station whose claim expired).

        A job left "burning" was recorded as intent before its seed write: the token
        may hold the seed. The job is failed (a person decides), and the registry marks
        the token provisioned with its settings unknown, so station mode never burns over
        it and a sync asks for the settings. A Molto2 job stays burning into its profile,
        whose seed flag settles it when the Molto2 is placed (:mod:`molto2_burn`).
        """
        for job in stuck:
            log.warning("job %d (%s) was burning when %s", job.id, job.label(), why)
            if not job.burned_serial or job.profile is not None:
                continue
            self.station.store.mark_uncertain_burn(job.burned_serial, time.time())
            op = writes.burn_failed(
                job.burned_serial,
                time.time(),
                f"interrupted: {why} during the burn of {job.label()}"
                + (f" at station {job.claimed_by}" if job.claimed_by else "")
                + "; the token may or may not hold the seed",
                fingerprint=job.fingerprint,
            )
            self.station.store.record_operation(dataclasses.replace(op, station=job.claimed_by))

    def start(self) -> None:
        """After recovery: on a shared queue, follow the other stations (loop thread);
        erase exported seeds by time."""
        self.count()
        self.keeper.start()
        self.pusher.start()
        if self.shared is not None:
            self.shared.start()

    async def stop(self) -> None:
        """Stop following the other stations and counting this station's changes."""
        self._own_changes.stop()
        self._new_jobs.stop()
        self.keeper.stop()
        self.pusher.stop()
        if self.shared is not None:
            await self.shared.stop()

    def status(self) -> dict[str, object]:
        """Queue, drop folder and mode, for GetStatus."""
        out: dict[str, object] = {
            "paused": self.paused,
            "mode": self.cfg.mode,
            **self.intake.status(),
            "station": self.cfg.station,
            "store": self.shared.status()
            if self.shared is not None
            else {"backend": "sqlite", "location": self.queue.location, "reachable": True},
        }
        # As last counted (-1: not yet); with the shared database away, as it was then.
        out["queue_length"] = self.waiting
        out["jobs_failed"] = self.failed_count
        if self.handover is not None:
            out["handover"] = self.handover
        if self.counted_at is not None:
            out["queue_counted_at"] = round(self.counted_at, 3)
        if self.pusher.active:
            out["handover_push"] = self.pusher.status()
        return out

    def lost(self, exc: StoreUnavailable) -> None:
        """A statement found the shared database away (loop thread): say so."""
        self._lost(exc)

    def _lost(self, exc: StoreUnavailable) -> None:
        if self.shared is not None:
            self.shared.lost(exc)

    def jobs_added(self) -> None:
        """Jobs were queued here but not from a file (seeds made here): publish, offer."""
        self.queue_changed()

    def queue_changed_elsewhere(self, what: str) -> None:
        """Another station changed the shared queue (loop thread): publish, offer again."""
        log.debug("queue changed at another station: %s", what)
        self.queue_changed()

    def catch_up(self) -> None:
        """The shared database is back (loop thread): take the files that waited, offer."""
        self.settle_away()
        self.intake.catch_up()
        self.queue_changed()

    def settle_away(self) -> None:
        """Record the burns the shared database could not take, step by step (each step
        durable here once done); what it still cannot take waits for the next time."""
        for burn in self.away.pending():
            try:
                self._settle(burn)
            except StoreUnavailable as exc:
                log.info("burn of job %d still waits for the shared database: %s", burn.job_id, exc)
                return
            self.claims.discard(burn.job_id)
            self.pusher.burned()  # a seed made here goes on to its hand-over
            log.info(
                "burn of job %d (%s) onto %s recorded in the shared database now",
                burn.job_id,
                burn.label,
                burn.serial,
            )

    def _settle(self, burn: AwayBurn) -> None:
        store = self.station.store
        for step in list(burn.steps):
            if step == "registry" and burn.settings is not None:
                written = TokenSettings(
                    HmacAlgorithm.parse(str(burn.settings["hmac"])),
                    int(burn.settings["period"]),
                    int(burn.settings["display_timeout"]),
                )
                store.record_write(burn.serial, written, burn.at, provisioned=True)
            elif step == "operation":
                store.record_operation(
                    burn_done_row(
                        burn.serial,
                        burn.at,
                        burn.detail + " (recorded after the shared database was back)",
                        burn.fingerprint,
                    )
                )
            elif step == "job":
                reason = (
                    f"burned onto {burn.serial} at station {burn.station} while the shared "
                    "database was away; recorded when it was back"
                )
                settled = self.queue.settle_away(
                    burn.job_id, burn.serial, burn.at, reason, burn.model
                )
                if settled is None:
                    log.warning(
                        "job %d (%s) was burned onto %s here while the shared database was "
                        "away, but meanwhile it was retried or removed elsewhere: check it "
                        "with `tokenstation queue list --all`",
                        burn.job_id,
                        burn.label,
                        burn.serial,
                    )
            elif step == "shared_log" and self.queue.shared:
                self.queue.log_burn(burn.log_row)
            self.away.done(burn.job_id, step)

    def queue_length(self) -> int:
        """Jobs waiting for a token, as last counted (0 before the first count)."""
        return max(self.waiting, 0)

    def count(self) -> bool:
        """Count the queue's waiting and failed jobs (False: the shared database is away,
        the last counts stand)."""
        try:
            waiting, failed, handover = self.queue.tally()
        except StoreUnavailable as exc:
            self.loop.call_soon_threadsafe(self._lost, exc)
            return False
        self.waiting, self.failed_count, self.counted_at = waiting, failed, time.time()
        self.handover = handover
        return True

    def _recount(self, what: str) -> None:
        """The queue changed at this station (loop thread, after what the change is part
        of is done): counted again; a new count is published."""
        log.debug("queue changed here: %s", what)
        before = self.waiting
        if self.count() and self.waiting != before:
            self.station.publish(QueueState(paused=self.paused, length=self.waiting))

    def _files_queued(self) -> None:
        """A file's jobs were queued (a file thread): offer them to the tokens on the
        readers (counted and published by the queue's own change, coalesced)."""
        self._new_jobs.poke("a file's jobs queued")

    def close(self) -> None:
        """Stop the file threads and the decoder processes."""
        self.intake.close()

    def queue_changed(self, *, offer: bool = True) -> None:
        """Publish the queue's state (loop thread); with ``offer``, offer jobs to tokens."""
        if not self.count():
            return
        self.station.publish(QueueState(paused=self.paused, length=self.waiting))
        if offer:
            self.offer_all()

    def set_paused(self, paused: bool) -> None:
        """Pause (no offers, no burns) or resume the queue; a resume offers jobs again."""
        if paused != self.paused:
            self.paused = paused
            self.queue_changed(offer=False)
        if not paused:
            self.offer_all()

    # -- tokens ------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        if isinstance(event, TokenMeasured):
            self.offer(event.reader)

    def offer_all(self) -> None:
        """Consider every measured token (after a resume, or when jobs arrive)."""
        for p in self.station.presences():
            if p.measured:
                self.offer(p.reader)

    def offer(self, reader: str) -> None:
        """Consider ``reader``'s token soon. Changes that arrive before that consideration
        starts share it: a burst of taken files (each a queue change) costs one look at
        the queue per token, not one per file, so the loop keeps answering."""
        if reader not in self._to_consider:
            self._to_consider.add(reader)
            self._spawn(self._consider(reader))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def touched(self, serial: str) -> bool:
        """This station burned the token, or tried to (registry or the queue's intents)."""
        return bool(self.burned_before(serial))

    def burned_before(self, serial: str) -> str:
        """What records ``serial`` as burned, or a burn onto it begun ("" if nothing): the
        registry (this station's or the shared one: a daemon's burn, a command-line burn,
        an interrupted one) or the queue's intents."""
        store = self.station.store
        burns = [op for op in store.operations(serial) if op.kind == OperationKind.BURN]
        if burns:
            op = burns[-1]
            where = f" at station {op.station}" if op.station else ""
            return f"the registry records a burn{where}: {op.outcome}, {op.detail}"
        record = store.token(serial)
        if record and record.provisioned:
            return "the registry records it as provisioned"
        if self.queue.targeted(serial):
            return "a burn onto it was begun from the queue"
        return ""

    async def _consider(self, reader: str) -> None:
        try:
            await self._consider_now(reader)
        except StoreUnavailable as exc:  # no burn without the shared queue
            self._lost(exc)

    async def _consider_now(self, reader: str) -> None:
        self._to_consider.discard(reader)  # a change from now on is considered again
        p = self.station.readers.get(reader)
        if p is None or p.model is None or self.paused:
            return
        family = family_of(p)
        if family.capabilities(p.model).profiles > 1:  # jobs into its free profiles
            # A page, as below, as long as the token has profiles: station mode burns a
            # page into the free profiles in one card session.
            size = max(CANDIDATES, len(p.free_profiles()))
            page = self.queue.claimable(p.serial, size + len(self._skipped) + len(self.held))
            every = len(page) >= size
            await family.consider(
                self,
                p,
                self._waiting(page, p),
                (lambda: self._waiting(self.queue.jobs(["queued"]), p)) if every else None,
            )
            return
        # A page of candidates, not the whole queue; the whole queue only when that page
        # holds nothing this token can take (all skipped, held or of other settings).
        page = self.queue.claimable(p.serial, CANDIDATES + len(self._skipped) + len(self.held))
        why = self.burned_before(p.serial)
        waiting = self._waiting(page, p)
        choice = choose_job(p.model, p.serial, bool(why), waiting, self.cfg.mode, why=why)
        if (
            choice.job is None
            and len(page) >= CANDIDATES
            and more_jobs_could_help(bool(why), self.cfg.mode)
        ):
            waiting = self._waiting(self.queue.jobs(["queued"]), p)
            choice = choose_job(p.model, p.serial, bool(why), waiting, self.cfg.mode, why=why)
        if choice.job is None:
            if waiting and choice.reason:
                log.info("no burn for %s: %s", p.serial, choice.reason)
            return
        await self.burn_or_offer(
            p,
            choice.job,
            automatic=choice.automatic,
            question=f"Burn {choice.job.label()} onto token {p.serial}?",
            warning=choice.reason,
        )

    async def burns_at_once(self, p: Presence) -> bool:
        """Station mode, at a placement (a single-profile token, known by its first read):
        will a job be burned onto it at once? The same choice :meth:`_consider_now`
        makes then; any doubt (paused, the shared database away, not yet recovered)
        says no, and the token is measured precisely as any placement is."""
        if self.paused or not self.recovered or p.model is None:
            return False
        if family_of(p).capabilities(p.model).profiles > 1:  # its own choice, per profile
            return False
        try:
            page = self.queue.claimable(p.serial, CANDIDATES + len(self._skipped) + len(self.held))
            why = self.burned_before(p.serial)
        except StoreUnavailable:
            return False
        waiting = self._waiting(page, p)
        choice = choose_job(p.model, p.serial, bool(why), waiting, self.cfg.mode, why=why)
        return choice.job is not None and choice.automatic

    def _waiting(self, jobs: list[Job], p: Presence) -> list[Job]:
        """``jobs`` without those skipped for this placement or held by a caller."""
        return [
            j
            for j in jobs
            if (j.id, p.reader, p.generation) not in self._skipped
            and j.source.split(" (", 1)[0] not in self.held
        ]

    async def burn_or_offer(
        self,
        p: Presence,
        job: Job,
        *,
        automatic: bool,
        question: str,
        warning: str = "",
        profile: int | None = None,
    ) -> None:
        """Burn ``job`` onto ``p`` now (station mode), or offer it with ``question``."""
        if automatic:
            try:
                await self.burn(job.id, p.serial, origin=Origin.STATION)
            except StationError as exc:
                log.warning("station-mode burn of job %d: %s", job.id, exc.message)
            return
        self.station.publish(
            BurnOffered(
                reader=p.reader,
                serial=p.serial,
                model=p.model_name,
                job=job_view(job),
                question=question,
                warning=warning,
                profile=profile,
            )
        )

    def skip(self, job_id: int, serial: str) -> None:
        """Do not offer this job to this token again while it stays on the reader."""
        p = self.station.find(serial)
        self._skipped.add((job_id, p.reader, p.generation))
        self.offer(p.reader)

    async def burn(self, job_id: int, serial: str, origin: Origin = Origin.MANUAL) -> BurnDone:
        """Burn job ``job_id`` onto the presented token ``serial``."""
        p = self.station.find(serial)
        assert p.model is not None
        try:
            job = self.queue.get(job_id)
        except StoreUnavailable as exc:
            self._lost(exc)
            raise StationError(
                ErrorKind.FAILED, exc.brief, "Burns wait until the shared database is back."
            ) from None
        if job is None:
            raise StationError(ErrorKind.INVALID, f"no job {job_id}", SEE_QUEUE)
        if job.serial and job.serial != p.serial:
            raise StationError(
                ErrorKind.REFUSED,
                f"job {job_id} is bound to token {job.serial}, not {p.serial}",
                f"Place token {job.serial}, or remove the job and queue its file again unbound.",
            )
        family = family_of(p)
        try:
            done = await self.station.write(p, family.burn_write(self, job, origin))
        finally:
            self.queue_changed(offer=False)
        if family.capabilities(p.model).profiles > 1:
            self.offer(p.reader)  # the next job into the next free profile
        assert isinstance(done, BurnDone)
        return done

    def log_provisioning(self, job: Job, p: Presence) -> None:
        """Append the provisioning-log row for a burned job (:mod:`provlog`; and the
        shared database's log when there is one)."""
        provlog.append(self.log_path, self.log_row(job, p), self.queue)

    def log_row(self, job: Job, p: Presence) -> dict[str, object]:
        """The provisioning-log row of a burned job (no secret)."""
        return provlog.row(
            at=job.burned_at or time.time(),
            station=self.cfg.station,
            serial=p.serial,
            model=p.model.name if p.model else "",
            issuer=job.issuer,
            account=job.account,
            fingerprint=job.fingerprint,
            algorithm=job.algorithm,
            period=job.period,
            job_id=job.id,
            source=job.source,
            profile=job.profile,
        )

    # -- queue management --------------------------------------------------------------

    def remove(self, job_id: int) -> Job:
        """Remove a queued or failed job (its secret is erased)."""
        self._existing(job_id, "removed", ("queued", "failed"))
        try:
            job = self.queue.remove(job_id)
        except ValueError as exc:
            raise StationError(ErrorKind.INVALID, str(exc), SEE_QUEUE) from None
        self.queue_changed()
        return job

    def retry(self, job_id: int) -> Job:
        """Put a failed job back in the queue."""
        self._existing(job_id, "retried", ("failed",))
        try:
            job = self.queue.retry(job_id)
        except ValueError as exc:
            raise StationError(ErrorKind.INVALID, str(exc), SEE_QUEUE) from None
        self.queue_changed()
        return job

    def _existing(self, job_id: int, verb: str, states: tuple[str, ...]) -> None:
        """An unknown id, or a job in another state, is bad input (not a safety refusal)."""
        job = self.queue.get(job_id)
        if job is None:
            raise StationError(ErrorKind.INVALID, f"there is no job {job_id}", SEE_QUEUE)
        if job.state not in states:
            raise StationError(
                ErrorKind.INVALID,
                f"job {job_id} ({job.label()}) is {job.state}; only {' or '.join(states)} "
                f"jobs can be {verb}",
                SEE_QUEUE,
            )


def default_paths(cfg: Config) -> tuple[Path, Path, Path]:
    """(drop folder, queue database, provisioning log)."""
    from tokenstation.daemon import xdg

    data = private_dir(xdg.data_dir())
    folder = cfg.drop.folder if cfg.drop.folder is not None else data / "drop"
    return folder, data / "queue.sqlite3", data / "provisioning-log.csv"
