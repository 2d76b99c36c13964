"""Which waiting job a measured single-profile token should get, and whether station
mode burns it without asking (pure policy: bound jobs first, never over a provisioned
token in station mode)."""

from __future__ import annotations

from dataclasses import dataclass

from tokenstation.daemon.provisioning.queue import Job
from tokenstation.daemon.token.models import Model


@dataclass(frozen=True)
class BurnChoice:
    """Which job (if any) a token should get, and whether without asking."""

    job: Job | None
    automatic: bool
    reason: str  # why nothing, or a warning for the offer


def choose_job(
    model: Model, serial: str, provisioned: bool, waiting: list[Job], mode: str, *, why: str = ""
) -> BurnChoice:
    """Pure policy: bound jobs first; station mode never burns over a provisioned token
    (``why``: what records it as burned, for the reason)."""
    if not model.programmable:
        return BurnChoice(None, False, "read-only model")
    usable = [
        j
        for j in waiting
        if j.algorithm in {a.name for a in model.algorithms} and j.period in model.periods
    ]
    bound = [j for j in usable if j.serial == serial]
    if bound:
        return BurnChoice(bound[0], mode == "station", "")
    free = [j for j in usable if not j.serial]
    if not free:
        return BurnChoice(None, False, "no job for this token")
    if mode == "station":
        if provisioned:
            return BurnChoice(
                None,
                False,
                f"token {serial} was provisioned before ({why or 'by this station'}); "
                "station mode never burns over it (bind a job to it by naming the file "
                "<serial>.png)",
            )
        return BurnChoice(free[0], True, "")
    warning = (
        f"token {serial} was provisioned by this station before; burning replaces its seed"
        if provisioned
        else ""
    )
    return BurnChoice(free[0], False, warning)


#: Waiting jobs a placement reads first (plus as many as were skipped or held).
CANDIDATES = 32


def more_jobs_could_help(provisioned: bool, mode: str) -> bool:
    """Whether waiting jobs beyond a placement's first page could change an empty choice.
    The page holds every job bound to the token, so only jobs bound to no token lie
    beyond it, and station mode never burns one of those over a provisioned token: a
    token burned before would read the whole queue at each queue change for nothing."""
    return not (provisioned and mode == "station")
