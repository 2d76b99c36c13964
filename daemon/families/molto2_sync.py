"""Clock sync of a Molto2 (its family's sync write): every profile holding a seed, time
only, through Station.write.

A Molto2 keeps a clock per profile. The time-only write (token-protocol.md 6.1) sets
a profile's clock and nothing else, and each profile's settings are read from it
before and checked unchanged after, so no settings need to be known or confirmed.
Drift before and after is per profile, in whole seconds (the profile's public data
reports whole seconds). Each profile's clock is read back after its write: one that did
not take stops the sync as a failure (SyncFailed), never "ok".
"""

from __future__ import annotations

import logging
import time

from tokenstation.daemon.cards import CardOperation, Presence, StationError, StationPort, Written
from tokenstation.daemon.clocksync.steps import host_clock_or_confirmed, sync_failed
from tokenstation.daemon.events import (
    OperationKind,
    Origin,
    Outcome,
    PresenceState,
    ProfilesSynced,
    ProfileSyncView,
)
from tokenstation.daemon.families.molto2_settings import customer_key
from tokenstation.daemon.registry.store import Operation
from tokenstation.daemon.token import molto2 as m
from tokenstation.daemon.token.errors import RefusedByPolicy, TokenError
from tokenstation.daemon.token.models import ModelTable
from tokenstation.daemon.token.molto2_session import (
    ClockNotSet,
    Molto2Session,
    ProfileSync,
    molto2_drift_words,
    profile_clock_drift,
)
from tokenstation.daemon.token.session import Connection, HostClock

log = logging.getLogger(__name__)


class Molto2SyncWrite(CardOperation[list[ProfileSync]]):
    """The clocks of a Molto2's seeded profiles, set in one card session (one login)."""

    kind = OperationKind.SYNC
    busy = PresenceState.SYNCING

    def __init__(
        self,
        station: StationPort,
        origin: Origin,
        *,
        confirm_untrusted_clock: bool = False,
        wait: bool,
    ) -> None:
        self.station = station
        self.origin = origin
        self.confirm = confirm_untrusted_clock
        self.wait = wait
        self.serial = ""
        self.untrusted = False
        self.seeded: list[m.ProfileInfo] = []
        self.shown_before: float | None = None

    async def prepare(self, p: Presence) -> None:
        assert p.profiles is not None
        self.serial = p.serial
        self.seeded = [i for i in p.profiles if i.seed_present]
        # The figure every view showed before the sync (each profile's own is re-read).
        self.shown_before = p.ident.drift.drift_s if p.ident is not None else None
        self.untrusted = await host_clock_or_confirmed(self.station, self.confirm)

    def perform(self, conn: Connection, clock: HostClock, models: ModelTable) -> list[ProfileSync]:
        session = Molto2Session(conn, customer_key(self.station.cfg), clock)
        serial = session.read_info().info.serial
        if serial != self.serial:
            raise RefusedByPolicy(
                f"the Molto2 on the reader is {serial}, not {self.serial}; nothing was written",
                "Plug in the intended device and try again.",
            )
        return session.sync(self.seeded)  # each profile is read again before its write

    def succeeded(self, p: Presence, result: list[ProfileSync]) -> Written:
        worst_before = profile_clock_drift(
            {r.profile: r.drift_before_s for r in result if r.drift_before_s is not None}
        )
        residual = profile_clock_drift(
            {r.profile: r.drift_after_s for r in result if r.drift_after_s is not None}
        )
        before = _rounded(
            self.shown_before
            if self.shown_before is not None and result
            else (worst_before.drift_s if worst_before else None)
        )
        after = _rounded(residual.drift_s if residual else None)
        self.station.update_profiles(p, [], residual)
        log.info(
            "synced %d profiles of Molto2 %s (%s): the largest drift was %s; now %s",
            len(result),
            p.serial,
            self.origin,
            molto2_drift_words(before, precision=False),
            molto2_drift_words(after),
        )
        event = ProfilesSynced(
            reader=p.reader,
            serial=p.serial,
            model=p.model_name,
            origin=self.origin,
            synced=len(result),
            profiles=tuple(
                ProfileSyncView(
                    profile=r.profile,
                    title=r.title,
                    drift_before_s=_rounded(r.drift_before_s),
                    drift_after_s=_rounded(r.drift_after_s),
                )
                for r in result
            ),
            drift_before_s=before,
            drift_after_s=after,
            untrusted_clock_confirmed=self.untrusted,
            drift_before_words=molto2_drift_words(before, precision=False),
            drift_after_words=molto2_drift_words(after),
        )
        op = Operation(
            p.serial,
            time.time(),
            OperationKind.SYNC,
            Outcome.OK,
            f"{self.origin}; time only, {len(result)} profiles (settings read from each)",
            before,
            after,
        )
        return Written(op, event)

    def failed(self, p: Presence, exc: StationError | TokenError) -> Written | None:
        if isinstance(exc, ClockNotSet):  # the presence shows the clocks as read back
            after = {r.profile: r.drift_after_s for r in exc.synced if r.drift_after_s is not None}
            if exc.drift_after_s is not None:
                after[exc.read_back.index] = exc.drift_after_s
            self.station.update_profiles(p, [exc.read_back], profile_clock_drift(after))
        return sync_failed(p, exc, self.origin)


def _rounded(value: float | None) -> float | None:
    """A Molto2 figure as events carry it (whole seconds)."""
    return None if value is None else float(round(value))
