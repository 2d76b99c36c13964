"""Clock sync of a single-profile token: one clock write with known settings, through
Station.write (the single family's sync write, ``families/single.py``)."""

from __future__ import annotations

import logging

from tokenstation.daemon.cards import (
    CardWrite,
    Presence,
    StationError,
    StationPort,
    Written,
    settings_view,
)
from tokenstation.daemon.clocksync.policy import KnownSettings, known_settings, unsafe_reason
from tokenstation.daemon.clocksync.steps import host_clock_or_confirmed, sync_failed
from tokenstation.daemon.events import ErrorKind, OperationKind, Origin, PresenceState, SyncDone
from tokenstation.daemon.registry import writes
from tokenstation.daemon.registry.store import TokenRecord
from tokenstation.daemon.token.errors import TokenError
from tokenstation.daemon.token.session import (
    ClockKind,
    DriftEstimate,
    TokenSession,
    WriteResult,
    describe_drift,
)
from tokenstation.daemon.token.settings import TokenSettings

log = logging.getLogger(__name__)


class SyncWrite(CardWrite):
    """One clock write: settings from the registry (or the caller), trust checked fresh."""

    kind = OperationKind.SYNC
    busy = PresenceState.SYNCING

    def __init__(
        self,
        station: StationPort,
        known: KnownSettings | None,
        origin: Origin,
        *,
        confirm_untrusted_clock: bool = False,
        wait: bool,
    ) -> None:
        self.station = station
        self.known = known
        self.serial = ""
        self.origin = origin
        self.confirm = confirm_untrusted_clock
        self.wait = wait
        self.drift_before: float | None = None
        self.measured_before: DriftEstimate | None = None
        self.clock_kind = ClockKind.UNKNOWN
        self.untrusted = False

    async def prepare(self, p: Presence) -> None:
        assert p.model is not None and p.ident is not None
        self.serial = p.serial
        self.drift_before = p.ident.drift.drift_s
        self.measured_before = p.ident.drift
        # What this token's clock did on an earlier sync: a phase-keeping one takes one write.
        self.clock_kind = ClockKind.parse(self.station.store.clock_kind(p.serial))
        unsafe = unsafe_reason(p.model, self.known)
        if unsafe:
            next_step = "Nothing was written to the token."
            if self.known is None and p.model.clock_write_keeps_seed:
                next_step += (
                    " If you know how it was burned, give the settings: `tokenstation sync "
                    "--algorithm sha1|sha256 --period 30|60 --display-timeout 15|30|60|120`."
                )
            raise StationError(ErrorKind.REFUSED, unsafe, next_step)
        self.untrusted = await host_clock_or_confirmed(self.station, self.confirm)

    def run(self, session: TokenSession) -> WriteResult:
        assert self.known is not None
        return session.set_clock(
            self.known.settings,
            expect_serial=self.serial,
            measure_after=True,
            clock_kind=self.clock_kind,
            before=self.measured_before,
        )

    def succeeded(self, p: Presence, result: WriteResult) -> Written:
        assert self.known is not None and self.drift_before is not None
        after = result.residual
        before = self.drift_before
        op = writes.synced(
            self.station.store,
            p.serial,
            self.known.settings,
            result,
            drift_before_s=before,
            detail=f"{self.origin}; settings from {self.known.source}",
        )
        log.info(
            "synced token %s (%s): was %s, now %s",
            p.serial,
            self.origin,
            describe_drift(before),
            describe_drift(after.drift_s) if after else "?",
        )
        event = SyncDone(
            reader=p.reader,
            serial=p.serial,
            model=p.model_name,
            origin=self.origin,
            drift_before_s=round(before, 3),
            drift_before_words=describe_drift(before),
            settings=settings_view(self.known.settings),
            settings_source=self.known.source,
            untrusted_clock_confirmed=self.untrusted,
            clock_kind=result.clock_kind,
            clock_writes=result.clock_writes,
            drift_after_s=round(after.drift_s, 3) if after else None,
            drift_after_uncertainty_s=round(after.uncertainty_s, 3) if after else None,
            drift_after_words=describe_drift(after.drift_s) if after else None,
            drift_after_bound_s=result.drift_bound_s if after else None,
        )
        return Written(op, event)

    def failed(self, p: Presence, exc: StationError | TokenError) -> Written | None:
        return sync_failed(p, exc, self.origin, self.drift_before)


def settings_for(
    station: StationPort, serial: str, given: TokenSettings | None
) -> KnownSettings | None:
    """The settings a clock write of token ``serial`` rewrites: ``given`` (refused when
    the registry knows others), else the registry's or the confirmed defaults."""
    record: TokenRecord | None = station.store.token(serial)
    registry = record.settings if record else None
    if given is None:
        return known_settings(registry, station.cfg)
    if registry is not None and registry != given:
        raise StationError(
            ErrorKind.REFUSED,
            f"this station wrote {_words(registry)} to token {serial}, not {_words(given)}",
            "Leave the settings out to use the registry's, or re-burn the token.",
        )
    return KnownSettings(given, "caller")


def _words(s: TokenSettings) -> str:
    return f"{s.hmac.name}, {s.period} s step, {s.display_timeout} s display"
