"""BurnAccount: one account handed over as a file, burned onto a presented token: into a
chosen (or the next free) profile of a token with profiles (`tokenstation burn --profile
N|next` while the daemon holds it), or onto a single-profile token (`tokenstation burn`
while the daemon runs). The token's family checks the options and gives the write.

The file goes through the intake as any added file (IngestFile's checks, its one job
bound to the token by the name the daemon gives it); the job is held back from offers
and station-mode burns while this call burns it, so it goes where it was asked for and
nowhere else. The burn is the queue's burn on :meth:`Station.write` (the crash-safe
order, never over a seed). Refused or requeued, the job is removed (its secret erased):
nothing waits in the queue that the caller did not queue. A burn into a profile cut
short after its seed write stays "burning" into that profile and is settled at the next
placement, as a queued one is.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from tokenstation.daemon.cards import StationError
from tokenstation.daemon.events import BurnDone, ErrorKind
from tokenstation.daemon.families.base import AccountOptions
from tokenstation.daemon.families.table import family_of

if TYPE_CHECKING:
    from tokenstation.daemon.provisioning.context import BurnContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SingleOptions:
    """BurnAccount's options for a single-profile token."""

    #: The caller was told the token was burned before and asked to replace its seed.
    replace: bool = False
    display_timeout: int | None = None


async def burn_account(
    prov: BurnContext,
    fd: int,
    name: str,
    serial: str,
    *,
    profile: int | None = None,
    title: str | None = None,
    single: SingleOptions = SingleOptions(),
) -> BurnDone:
    """Queue the account in the file ``fd`` (typed by ``name``'s suffix; the descriptor
    is closed here) and burn it into ``profile`` (None: the next free one) of ``serial``,
    or onto ``serial`` when it is a single-profile token (with ``single``'s options)."""
    try:
        p = prov.station.find(serial)
        # The token's family checks the options and gives the write (never a guess).
        asked = AccountOptions(profile, title, single.replace, single.display_timeout)
        write_for = family_of(p).account_burn(p, asked)
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        raise
    key = f"{p.serial}.burn-{uuid.uuid4().hex[:12]}{PurePosixPath(name).suffix}"
    prov.held.add(key)  # no offer, no station-mode burn takes it meanwhile
    try:
        taken = await prov.intake.ingest(fd, key)
        if len(taken.queued) != 1:
            why = (
                "the same secret is already held by " + ", ".join(taken.duplicates)
                if taken.duplicates
                else taken.reason or f"{len(taken.queued)} accounts in it, not one"
            )
            for view in taken.queued:
                prov.queue.remove(view.id)
            raise StationError(
                ErrorKind.REFUSED,
                f"nothing was burned: {why}",
                "Check `tokenstation queue list --all`; a secret is burned once.",
            )
        job = prov.queue.get(taken.queued[0].id)
        assert job is not None
        try:
            done = await prov.station.write(p, write_for(prov, job))
        except StationError:
            left = prov.queue.get(job.id)
            if left is not None and left.state == "queued":  # nothing written: not kept
                prov.queue.remove(job.id)
            raise
    finally:
        prov.held.discard(key)
        prov.queue_changed()  # the queue's state published; other jobs offered again
    assert isinstance(done, BurnDone)
    if done.job.profile is not None:
        log.info("burned %s into profile %s of %s", done.job.label, done.job.profile, serial)
    return done
