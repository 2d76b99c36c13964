"""The burn steps the single-profile and the Molto2 burn share: claim a job (seed opened
first, then the intent committed), the crash-safe bookkeeping after the seed write
(registry or ledger, job burned, provisioning-log row; kept in ``away-burns.json`` while
the shared database is away), the refusals as sentences, and the views events carry.

They see the provisioner only through :class:`context.BurnContext`, so a family's
burn module needs no import of the provisioner.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterator

from tokenstation.daemon.cards import (
    Presence,
    StationError,
    Written,
)
from tokenstation.daemon.events import (
    BurnFailed,
    BurnOutcome,
    ErrorKind,
    JobView,
    OperationKind,
    Origin,
    Outcome,
    decode,
)
from tokenstation.daemon.provisioning import provlog
from tokenstation.daemon.provisioning.away import NOTE, AwayBurn
from tokenstation.daemon.provisioning.context import BurnContext
from tokenstation.daemon.provisioning.otpcode import expected_code
from tokenstation.daemon.provisioning.queue import Job, SealBroken
from tokenstation.daemon.registry import writes
from tokenstation.daemon.registry.store import Operation
from tokenstation.daemon.storage.database import StoreUnavailable
from tokenstation.daemon.token.errors import TokenError
from tokenstation.daemon.token.secret import Secret
from tokenstation.daemon.token.settings import TokenSettings

log = logging.getLogger(__name__)

SEE_QUEUE = "See the jobs and their states with `tokenstation queue list --all`."


@contextlib.contextmanager
def burn_refusals() -> Iterator[None]:
    """The queue's refusals of a burn (a job in another state, no secret, a seed this
    station's key does not open, the shared database away) as :class:`StationError`."""
    try:
        yield
    except (ValueError, KeyError) as exc:
        raise StationError(ErrorKind.REFUSED, str(exc).strip("'\""), SEE_QUEUE) from None
    except SealBroken as exc:
        raise StationError(
            ErrorKind.REFUSED, str(exc), "Copy the key file of the other stations here."
        ) from None
    except StoreUnavailable as exc:
        raise StationError(
            ErrorKind.FAILED, exc.brief, "Burns wait until the shared database is back."
        ) from None


def claim_burn(
    prov: BurnContext,
    job_id: int,
    serial: str,
    profile: int | None = None,
    *,
    like: Job | None = None,
) -> tuple[Job, Secret]:
    """Claim job ``job_id`` for a burn onto ``serial`` (a Molto2's ``profile``): the queue
    commits the intent with the seed opened in the same transaction (a wrong key claims
    nothing), then the claim is renewed while the burn runs (``prov.claims``). With
    ``like`` (station mode's free job): the oldest free job of its settings from it on
    that another station placing a token at the same moment is not claiming
    (:meth:`JobQueue.claim`); only ``job_id`` while a caller holds some files' jobs.
    Refusals: StationError."""
    _may_claim(prov)
    if prov.held or (like is not None and like.serial):
        like = None  # a caller's held jobs are not this token's: the one chosen, exactly
    with burn_refusals():
        job, seed = prov.queue.claim(job_id, serial, profile, like=like)
    prov.claims.add(job.id)
    return job, seed


def claim_batch(
    prov: BurnContext, job_ids: list[int], serial: str, profiles: list[int]
) -> list[tuple[Job, Secret]]:
    """Claim the jobs of one card session into a Molto2's free ``profiles``, every intent
    committed at once before the first seed write (:meth:`JobQueue.claim_batch`); the
    claims renewed while the session runs. Refusals: StationError."""
    _may_claim(prov)
    with burn_refusals():
        claimed = prov.queue.claim_batch(job_ids, serial, profiles)
    prov.claims.update(job.id for job, _seed in claimed)
    return claimed


def _may_claim(prov: BurnContext) -> None:
    """Refuse every claim while a station started without its shared database has not
    reached it (it would not know the claims it holds)."""
    if prov.shared is not None and not (prov.shared.verified and prov.recovered):
        raise StationError(
            ErrorKind.FAILED,
            "this station started while the shared database was away and has not reached "
            "it yet: it claims no job until it has",
            "Burns wait until `tokenstation status` says the shared database is reachable.",
        )


def burned(
    prov: BurnContext,
    job_id: int,
    p: Presence,
    record: Callable[[], None],
    *,
    job: Job | None = None,
    settings: TokenSettings | None = None,
) -> Job:
    """After the seed write, in crash-safe order: ``record`` (the registry or the ledger),
    then the job burned (its secret erased), then the provisioning-log row.

    The shared database away at any of these steps: the steps left are kept here
    (:mod:`away`), the local log row written, and the job returned as burned with the
    :data:`away.NOTE` as its reason; it stays claimed (renewed) until it is recorded.
    Without ``job`` (a Molto2's, whose ledger is local) the loss is raised as before."""
    steps = ["registry", "operation", "job", "shared_log"]
    try:
        return _after_write(prov, [job_id], p, record, steps)[0]
    except StoreUnavailable as exc:
        if job is None:
            prov.claims.discard(job_id)  # it expires, and is settled as interrupted
            raise
        prov.lost(exc)
        at = time.time()
        local = dataclasses.replace(
            job, state="burned", burned_serial=p.serial, burned_at=at, has_secret=False, reason=NOTE
        )
        row = prov.log_row(local, p)
        if "job" in steps:  # else the local row is written already
            provlog.append(prov.log_path, row)
        log.warning(
            "burned job %d (%s) onto %s; the shared database was away (%s): recorded here "
            "and sent when it is back",
            job.id,
            job.label(),
            p.serial,
            exc,
        )
        prov.away.keep(
            AwayBurn(
                job.id,
                p.serial,
                at,
                job.label(),
                job.fingerprint,
                prov.cfg.station,
                job.label(),
                settings.as_dict() if settings is not None else None,
                {k: str(v) for k, v in row.items()},
                steps,
                p.model.name if p.model else "",
            )
        )
        return local
    except BaseException:
        prov.claims.discard(job_id)  # no more renewals: it expires, settled as interrupted
        raise


def burned_batch(
    prov: BurnContext, job_ids: list[int], p: Presence, record: Callable[[], None]
) -> list[Job]:
    """:func:`burned` for the jobs of one card session (a Molto2's profiles), each step
    once for all of them in the same crash-safe order: ``record`` (the ledger), the jobs
    burned in one transaction, their provisioning-log rows with one flush. A loss of the
    shared database is raised (the jobs stay burning and are settled as interrupted)."""
    try:
        return _after_write(prov, job_ids, p, record, [])
    except BaseException:
        prov.claims.difference_update(job_ids)  # no more renewals
        raise


def _after_write(
    prov: BurnContext,
    job_ids: list[int],
    p: Presence,
    record: Callable[[], None],
    steps: list[str],
) -> list[Job]:
    """The steps after the seed writes, removing each from ``steps`` once done (what is
    left is what the away bookkeeping still has to do)."""
    crash = prov.crash_point
    crash("written")
    record()
    if "registry" in steps:
        steps.remove("registry")
    crash("registry")
    model = p.model.name if p.model else ""
    if len(job_ids) == 1:
        done = [prov.queue.burned(job_ids[0], p.serial, model)]
    else:
        done = prov.queue.burned_batch(job_ids, p.serial, model)
    if "job" in steps:
        steps.remove("job")
    prov.claims.difference_update(job_ids)
    crash("burned")
    rows = [prov.log_row(job, p) for job in done]
    provlog.append_rows(prov.log_path, rows)  # this station's log first, then the shared one
    crash("logged")
    if prov.queue.shared:
        for row in rows:
            prov.queue.log_burn(row)
    prov.pusher.burned()  # the hand-over's peer: a seed made here goes to privacyIDEA
    return done


def burn_done_row(serial: str, at: float, detail: str, fingerprint: str) -> Operation:
    """The registry's row of a burn done while the shared database was away (the row
    :func:`writes.burned` returns when it can record the token at once)."""
    return Operation(
        serial, at, OperationKind.BURN, Outcome.OK, detail, secret_fingerprint=fingerprint
    )


def expected_hint(
    job: Job, seed: Secret, settings: TokenSettings, at: float, digits: int = 6
) -> tuple[str, float] | None:
    """The code the token should show now, and until when (None: the burn stands, only
    the hint is missing)."""
    try:
        return expected_code(seed, settings, at, digits)
    except Exception:
        log.exception("could not compute the expected code for job %d", job.id)
        return None


def burn_failed(
    p: Presence,
    origin: Origin,
    job: Job,
    outcome: BurnOutcome,
    exc: StationError | TokenError,
    *,
    profile: int | None = None,
) -> Written:
    """The registry row and the BurnFailed event of a burn that did not complete."""
    where = "" if profile is None else f"profile {profile}: "
    op = writes.burn_failed(
        p.serial, time.time(), where + exc.message, fingerprint=job.fingerprint, profile=profile
    )
    event = BurnFailed(
        reader=p.reader,
        serial=p.serial,
        model=p.model_name,
        origin=origin,
        job=job_view(job),
        outcome=outcome,
        message=exc.message,
        next_step=exc.next_step,
    )
    return Written(op, event)


def job_view(job: Job) -> JobView:
    """A job as events carry it."""
    return decode(JobView, job.as_dict())
