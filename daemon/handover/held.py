"""Burned generated seeds as hand-over records, from the queue (burn order kept)."""

from __future__ import annotations

from tokenstation.daemon.handover.record import MANUFACTURER, BurnedToken, printed_serial
from tokenstation.daemon.provisioning.queue import Job, JobQueue
from tokenstation.daemon.token.secret import Secret

DIGITS = 6  # what every burned token shows


def record_of(job: Job, seed: Secret, order: int) -> BurnedToken:
    """One burned job as the identity server needs to know it."""
    return BurnedToken(
        serial=printed_serial(job.burned_serial or job.serial, job.profile),
        manufacturer=MANUFACTURER,
        model=job.model,
        algorithm=job.algorithm.lower(),
        digits=DIGITS,
        period=job.period,
        upn=job.upn,
        label=job.label(),
        batch=job.batch,
        order=order,
        seed=seed,
    )


def held_records(
    queue: JobQueue, batch: str | None = None, states: tuple[str, ...] = ("pending", "exported")
) -> list[tuple[int, BurnedToken]]:
    """(job id, record) of every held seed (one batch), in the order they were burned."""
    return [
        (job.id, record_of(job, seed, n))
        for n, (job, seed) in enumerate(queue.held_seeds(batch, states), 1)
    ]
