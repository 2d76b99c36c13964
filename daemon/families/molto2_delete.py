"""Deleting one Molto2 profile's seed through the daemon (the DeleteProfile method).

A delete is an explicit, separate action (a burn never writes over a seed): the caller
has asked a person first (`tokenstation delete --profile N`); the tray does not offer it.
It is one :meth:`Station.write` (the reader's lock, the generation check), so it never
runs beside a burn or a sync of the same Molto2. The registry records the operation
(serial + profile), the ledger forgets the account, the presence's profile is read back
and a :class:`ProfileDeleted` event carries the refreshed presence.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from tokenstation.daemon.cards import CardOperation, Presence, StationError, StationPort, Written
from tokenstation.daemon.events import (
    ErrorKind,
    Fault,
    FaultKind,
    OperationKind,
    Origin,
    Outcome,
    PresenceState,
    ProfileDeleted,
)
from tokenstation.daemon.families.molto2_ledger import station_ledger
from tokenstation.daemon.families.molto2_settings import customer_key
from tokenstation.daemon.registry.store import Operation
from tokenstation.daemon.token import molto2 as m
from tokenstation.daemon.token.errors import RefusedByPolicy, TokenError
from tokenstation.daemon.token.models import ModelTable
from tokenstation.daemon.token.molto2_session import Molto2Session
from tokenstation.daemon.token.session import Connection, HostClock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deleted:
    """What the delete found and did: the profile as read back afterwards."""

    deleted: bool
    before: m.ProfileInfo
    after: m.ProfileInfo


class Molto2DeleteWrite(CardOperation[Deleted]):
    """Delete the seed of one profile (its title stays), verified by reading it back."""

    kind = OperationKind.DELETE
    busy = PresenceState.BURNING  # the presence says a write is under way
    wait = True

    def __init__(self, station: StationPort, profile: int, origin: Origin = Origin.MANUAL) -> None:
        self.station = station
        self.profile = profile
        self.origin = origin
        self.serial = ""

    async def prepare(self, p: Presence) -> None:
        if p.profiles is None:
            raise StationError(
                ErrorKind.INVALID,
                f"token {p.serial} ({p.model_name}) has no profiles",
                "Profiles exist only on multi-profile tokens (Token2 Molto2).",
            )
        if not any(i.index == self.profile for i in p.profiles):
            raise StationError(
                ErrorKind.INVALID,
                f"Molto2 {p.serial} has profiles 0..{len(p.profiles) - 1}, not {self.profile}",
                "Give a profile shown by `tokenstation profiles`.",
            )
        self.serial = p.serial

    def perform(self, conn: Connection, clock: HostClock, models: ModelTable) -> Deleted:
        session = Molto2Session(conn, customer_key(self.station.cfg), clock)
        serial = session.read_info().info.serial
        if serial != self.serial:
            raise RefusedByPolicy(
                f"the Molto2 on the reader is {serial}, not {self.serial}; nothing was deleted",
                "Plug in the intended device and try again.",
            )
        before = session.read_profile(self.profile)
        deleted = session.delete(self.profile) if before.seed_present else False
        after = session.read_profile(self.profile) if deleted else before
        return Deleted(deleted, before, after)

    def succeeded(self, p: Presence, result: Deleted) -> Written:
        ledger = station_ledger(self.station.cfg.state_dir)
        entry = ledger.accounts(p.serial).get(self.profile, {}) if result.deleted else {}
        if result.deleted:
            ledger.forget(p.serial, self.profile)
        self.station.update_profiles(p, [result.after])
        title = result.before.title
        what = (
            f"deleted the seed of profile {self.profile}"
            + (f" ({entry['account']})" if entry.get("account") else "")
            + (f", title {title!r} kept" if title else "")
            if result.deleted
            else f"profile {self.profile} held no seed; nothing deleted"
        )
        log.info("Molto2 %s: %s (%s)", p.serial, what, self.origin)
        op = Operation(
            p.serial,
            time.time(),
            OperationKind.DELETE,
            Outcome.OK,
            f"{self.origin}; {what}",
            secret_fingerprint=entry.get("secret_fingerprint"),
            profile=self.profile,
        )
        event = ProfileDeleted(
            **p.fields(),
            profile=self.profile,
            title=title,
            deleted=result.deleted,
            origin=self.origin,
        )
        return Written(op, event)

    def failed(self, p: Presence, exc: StationError | TokenError) -> Written | None:
        if isinstance(exc, StationError):
            return None  # refused before the card was touched: nothing to record
        op = Operation(
            p.serial,
            time.time(),
            OperationKind.DELETE,
            Outcome.FAILED,
            f"profile {self.profile}: {exc.message}",
            profile=self.profile,
        )
        event = Fault(
            kind=FaultKind.ERROR,
            reader=p.reader,
            message=f"could not delete profile {self.profile} of Molto2 {p.serial}: {exc.message}",
            next_step=exc.next_step or "Run `tokenstation profiles` to see what it holds now.",
        )
        return Written(op, event)
