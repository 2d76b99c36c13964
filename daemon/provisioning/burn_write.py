"""The single-profile burn as one card write, in crash-safe order (the Molto2's is in
:mod:`molto2_burn`)."""

from __future__ import annotations

import logging

from tokenstation.daemon.cards import (
    CardWrite,
    Presence,
    StationError,
    Written,
    settings_view,
)
from tokenstation.daemon.events import (
    BurnDone,
    BurnOutcome,
    ErrorKind,
    OperationKind,
    Origin,
    PresenceState,
)
from tokenstation.daemon.provisioning.away import NOTE
from tokenstation.daemon.provisioning.context import BurnContext
from tokenstation.daemon.provisioning.queue import Job
from tokenstation.daemon.provisioning.steps import (
    burn_done_row,
    burn_failed,
    burned,
    claim_burn,
    expected_hint,
    job_view,
)
from tokenstation.daemon.registry import writes
from tokenstation.daemon.registry.store import Operation
from tokenstation.daemon.token.errors import CardLost, RefusedByPolicy, TokenError, TransportError
from tokenstation.daemon.token.secret import Secret
from tokenstation.daemon.token.session import ClockKind, DriftEstimate, TokenSession, WriteResult

log = logging.getLogger(__name__)


class BurnWrite(CardWrite):
    """One burn, in crash-safe order.

    1. ``prepare``: the queue commits "burning job J onto serial S" (synchronous=FULL)
       before the card is touched: the intent a restart resolves (:meth:`Provisioner.recover`).
    2. ``run``: the seed write.
    3. ``succeeded``: the registry marks the token provisioned with its settings, then the
       queue marks the job burned (erasing the secret), then the provisioning-log row;
       the station records the operation and publishes BurnDone.

    A stop anywhere leaves either the intent (resolved at start-up: token provisioned,
    job failed for a person to decide) or a burned job with a provisioned token.
    """

    kind = OperationKind.BURN
    busy = PresenceState.BURNING
    wait = True

    def __init__(self, prov: BurnContext, job: Job, origin: Origin) -> None:
        self.prov = prov
        self.job = job
        self.origin = origin
        self.started = False
        self.settings = job.settings(prov.cfg.token_defaults.display_timeout)
        self.seed: Secret | None = None
        self.serial = ""
        self.before: DriftEstimate | None = None
        self.clock_kind = ClockKind.UNKNOWN

    async def prepare(self, p: Presence) -> None:
        if self.prov.paused and self.origin == Origin.STATION:
            raise StationError(ErrorKind.REFUSED, "the queue is paused", "Resume it first.")
        like = self.job if self.origin == Origin.STATION else None  # not an offer's
        self.job, self.seed = claim_burn(self.prov, self.job.id, p.serial, like=like)
        self.started = True
        self.serial = p.serial
        # Measured after the write (as a sync is), so every view shows the drift after.
        self.before = p.ident.drift if p.ident is not None else None
        self.clock_kind = ClockKind.parse(self.prov.station.store.clock_kind(p.serial))
        self.prov.crash_point("intent")

    def run(self, session: TokenSession) -> WriteResult:
        assert self.seed is not None
        return session.burn(
            self.seed,
            self.settings,
            expect_serial=self.serial,
            measure_after=True,
            clock_kind=self.clock_kind,
            before=self.before,
            # Placed for a burn at once (station mode), measured by one read: the clock
            # is written at the host's next second and measured precisely after.
            measure_before=self.before is None or self.before.method == "rollover",
        )

    def succeeded(self, p: Presence, result: WriteResult) -> Written:
        at = result.host_time_after
        store = self.prov.station.store
        ops: list[Operation] = []
        done = burned(
            self.prov,
            self.job.id,
            p,
            lambda: ops.append(
                writes.burned(
                    store,
                    p.serial,
                    self.settings,
                    at,
                    detail=f"{self.origin}; {self.job.label()}",
                    fingerprint=self.job.fingerprint,
                )
            ),
            job=self.job,
            settings=self.settings,
        )
        assert self.seed is not None
        expected = expected_hint(done, self.seed, self.settings, at)
        if done.id not in self.prov.away:  # else said with the reason already
            log.info("burned job %d (%s) onto %s", done.id, done.label(), p.serial)
        event = BurnDone(
            reader=p.reader,
            serial=p.serial,
            model=p.model_name,
            origin=self.origin,
            job=job_view(done),
            settings=settings_view(self.settings),
            power_cycle_required=True,
            token_time=result.token_time_after,
            expected_code=expected[0] if expected else None,
            expected_code_valid_until=expected[1] if expected else None,
            note=NOTE if done.id in self.prov.away else "",
        )
        if not ops:  # the registry was away: the same row, recorded when it is back
            ops.append(
                burn_done_row(
                    p.serial, at, f"{self.origin}; {self.job.label()}", self.job.fingerprint
                )
            )
        return Written(ops[0], event)

    def failed(self, p: Presence, exc: StationError | TokenError) -> Written | None:
        if not self.started:
            return None  # refused before the queue or the card was touched
        self.prov.claims.discard(self.job.id)
        nothing_written = isinstance(exc, StationError | RefusedByPolicy)
        gone = isinstance(exc, CardLost | TransportError)
        queue = self.prov.queue
        if nothing_written or gone:
            job = queue.back_to_queue(self.job.id, exc.message)
            outcome = BurnOutcome.REQUEUED
        else:
            job = queue.failed(self.job.id, exc.message)
            outcome = BurnOutcome.FAILED
        return burn_failed(p, self.origin, job, outcome, exc)


class RequestedBurnWrite(BurnWrite):
    """BurnAccount onto a single-profile token (`tokenstation burn` while the daemon runs):
    a manual burn of the caller's own job, with the caller's display timeout (None: the
    daemon's). Onto a token this station or the shared registry already burned only with
    ``replace``: the caller's question named that burn (one made meanwhile is refused)."""

    def __init__(
        self, prov: BurnContext, job: Job, *, replace: bool, display_timeout: int | None
    ) -> None:
        super().__init__(prov, job, Origin.MANUAL)
        self.replace = replace
        if display_timeout is not None:
            self.settings = job.settings(display_timeout)

    async def prepare(self, p: Presence) -> None:
        why = "" if self.replace else self.prov.burned_before(p.serial)
        if why:
            raise StationError(
                ErrorKind.REFUSED,
                f"token {p.serial} was burned before ({why}); it was not touched",
                "Run the burn again: its question then names the earlier burn, and a yes "
                "replaces that seed.",
            )
        await super().prepare(p)
