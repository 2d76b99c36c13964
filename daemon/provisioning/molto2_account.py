"""BurnAccount: one account handed over as a file, burned into a chosen (or the next
free) profile of a presented Molto2: `tokenstation burn --profile N|next` while the
daemon holds the Molto2 (the command never drives it beside the daemon).

The file goes through the intake as any added file (IngestFile's checks, its one job
bound to the Molto2 by the name the daemon gives it); the job is held back from offers
and station-mode burns while this call burns it, so it goes into the profile asked
for and nowhere else. The burn is the queue's Molto2 burn on :meth:`Station.write`
(the crash-safe order, never over a seed: the profile's flag is read again before the
seed write). Refused or requeued, the job is removed (its secret erased): nothing waits
in the queue that the caller did not queue. A burn cut short after its seed write stays
"burning" into that profile and is settled at the next placement, as a queued one is
(its title then by issuer:account: a title given to this call is not kept that long).
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from tokenstation.daemon.events import BurnDone, ErrorKind, Origin
from tokenstation.daemon.provisioning.burn_write import RequestedBurnWrite
from tokenstation.daemon.provisioning.molto2_burn import Molto2BurnWrite
from tokenstation.daemon.provisioning.queue import Job
from tokenstation.daemon.station import CardOperation, Presence, StationError
from tokenstation.daemon.token import molto2 as m
from tokenstation.daemon.token.errors import InvalidInput
from tokenstation.daemon.token.settings import TokenSettings

if TYPE_CHECKING:
    from tokenstation.daemon.provisioning.context import BurnContext

log = logging.getLogger(__name__)

_SEE_PROFILES = "See the profiles with `tokenstation profiles`."


@dataclass(frozen=True)
class SingleOptions:
    """BurnAccount's options for a single-profile token."""

    #: The caller was told the token was burned before and asked to replace its seed.
    replace: bool = False
    display_timeout: int | None = None


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


def _check(p: Presence, profile: int | None, title: str | None, single: SingleOptions) -> None:
    if p.profiles is None:
        if profile is not None or title is not None:
            raise StationError(
                ErrorKind.INVALID,
                f"token {p.serial} ({p.model_name}) has no profiles",
                "Profiles and titles exist only on multi-profile tokens (Token2 Molto2).",
            )
        if single.display_timeout is not None and p.model is not None:
            try:
                TokenSettings(display_timeout=single.display_timeout)
            except (InvalidInput, ValueError) as exc:
                raise StationError(ErrorKind.INVALID, f"display_timeout: {exc}") from None
        return
    if single.replace or single.display_timeout is not None:
        raise StationError(
            ErrorKind.INVALID,
            f"Molto2 {p.serial}: replace and display_timeout are for single-profile tokens",
            "A profile is burned only where no seed is, with the daemon's display timeout.",
        )
    if profile is not None and not 0 <= profile < len(p.profiles):
        raise StationError(
            ErrorKind.INVALID,
            f"Molto2 {p.serial} has profiles 0..{len(p.profiles) - 1}, not {profile}",
            _SEE_PROFILES,
        )
    if title is not None:
        try:
            m.title_bytes(title)
        except (InvalidInput, ValueError) as exc:
            raise StationError(
                ErrorKind.INVALID, f"title: {exc}", "Give a shorter title."
            ) from None


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
        _check(p, profile, title, single)
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
            write: CardOperation[Any] = (
                AccountBurnWrite(prov, job, profile, title)
                if p.profiles is not None
                else RequestedBurnWrite(
                    prov, job, replace=single.replace, display_timeout=single.display_timeout
                )
            )
            done = await prov.station.write(p, write)
        except StationError:
            left = prov.queue.get(job.id)
            if left is not None and left.state == "queued":  # nothing written: not kept
                prov.queue.remove(job.id)
            raise
    finally:
        prov.held.discard(key)
        prov.queue_changed()  # the queue's state published; other jobs offered again
    assert isinstance(done, BurnDone)
    if p.profiles is not None:
        log.info("burned %s into profile %s of Molto2 %s", done.job.label, done.job.profile, serial)
    return done
