"""What is on a reader and how a card is written: the words the Station, its features and
the token families share (Presence, CardOperation, Written, StationError, StationPort).

Below the Station and the families both: a family's writes (``daemon/families/``) are
card operations and read presences, and the Station carries them out, so neither needs
the other's module to name them. The Station owns every Presence and changes it; the
others read it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from tokenstation.daemon.clocksync.policy import ClockTrust, SyncDecision
from tokenstation.daemon.config import Config
from tokenstation.daemon.events import (
    ErrorKind,
    Event,
    OperationKind,
    PresenceState,
    PresenceView,
    SettingsView,
)
from tokenstation.daemon.registry.store import Operation, Store
from tokenstation.daemon.token.errors import TokenError
from tokenstation.daemon.token.models import Model, ModelTable
from tokenstation.daemon.token.problem import Problem
from tokenstation.daemon.token.profiles import ProfileInfo
from tokenstation.daemon.token.session import (
    Connection,
    DriftEstimate,
    HostClock,
    Identification,
    TokenSession,
    WriteResult,
)
from tokenstation.daemon.token.settings import TokenSettings

R = TypeVar("R")


class StationError(Problem):
    """A request the station (or a feature) refused or could not carry out."""

    def __init__(self, kind: ErrorKind, message: str, next_step: str = "") -> None:
        super().__init__(message, next_step, kind=kind)


class FamilyView(Protocol):
    """The part of a token family a presence's view asks (``families.base.Family``)."""

    name: str

    def drift_words(self, drift_s: float | None) -> str:
        """The drift in the family's words ('3.2 s fast', '7 s fast (whole-second ...)')."""
        ...

    def view_fields(self, p: Presence) -> dict[str, Any]:
        """The family's own view fields (what the token holds, how it is named)."""
        ...


@dataclass
class Presence:
    """What is on one reader right now (owned and changed by the Station only)."""

    reader: str
    generation: int
    atr: bytes
    placed_at: float
    state: PresenceState = PresenceState.IDENTIFYING
    serial: str = ""
    model: Model | None = None
    ident: Identification | None = None
    precise: bool = False
    decision: SyncDecision | None = None
    detail: str = ""
    #: The token's family, once identified (``families.family_of`` finds it by name).
    family: FamilyView | None = None
    #: A token with profiles: every profile's public data as last read (None: one seed).
    profiles: list[ProfileInfo] | None = None
    #: The token refused the key: no write authenticates again while it stays placed.
    key_refused: bool = False

    @property
    def measured(self) -> bool:
        """A token whose precise drift is known and that nothing is writing to."""
        return self.model is not None and self.precise and self.state == PresenceState.TOKEN

    def fields(self) -> dict[str, Any]:
        """The presence's view fields (for PresenceView and the events built on it)."""
        out: dict[str, Any] = {
            "reader": self.reader,
            "state": self.state,
            "placed_at": round(self.placed_at, 3),
            "detail": self.detail or None,
        }
        if self.model is not None:
            out.update(
                serial=self.serial,
                model=self.model.name,
                programmable=self.model.programmable,
                restricted_sync=self.model.restricted_sync,
            )
        if self.ident is not None:
            d = self.ident.drift
            out.update(
                token_time=self.ident.token_time,
                host_time=round(self.ident.host_time, 3),
                drift_s=round(d.drift_s, 3),
                drift_uncertainty_s=round(d.uncertainty_s, 3),
                drift_method=d.method,
                drift_words=self.family.drift_words(d.drift_s) if self.family else None,
                precise=self.precise,
            )
        dec = self.decision
        if dec is not None:
            out.update(
                verdict=dec.verdict,
                sync_safe=dec.sync_safe,
                sync_offered=dec.sync_offered,
                needs_confirmation=dec.needs_confirmation,
                auto_sync=dec.auto_sync,
                reason=dec.reason,
            )
            if dec.settings is not None:
                out["settings"] = settings_view(dec.settings.settings)
                out["settings_source"] = dec.settings.source
        if self.family is not None and self.model is not None:
            out.update(self.family.view_fields(self))
        return out

    def free_profiles(self) -> list[int]:
        """The profiles without a seed, lowest first (empty for a one-seed token)."""
        return [i.index for i in self.profiles or () if not i.seed_present]

    def view(self) -> PresenceView:
        """The presence as clients see it."""
        return PresenceView(**self.fields())

    @property
    def model_name(self) -> str:
        """The model's name ("" before identification)."""
        return self.model.name if self.model else ""


def settings_view(s: TokenSettings) -> SettingsView:
    """Token settings as events carry them."""
    return SettingsView(hmac=s.hmac.label, period=s.period, display_timeout=s.display_timeout)


@dataclass(frozen=True)
class Written:
    """What a card write's feature reports back: the registry row and the event."""

    operation: Operation
    event: Event


class StationPort(Protocol):
    """What a family's card writes and the features' steps need of the Station
    (``station.Station`` is one), so that they need not import it."""

    cfg: Config
    store: Store
    models: ModelTable
    readers: dict[str, Presence | None]

    async def check_clock(self, *, fresh: bool = False) -> ClockTrust:
        """Whether the host clock may be trusted now."""
        ...

    def publish(self, event: Event) -> None:
        """Send an event to every subscriber."""

    def find(self, serial: str = "", reader: str = "") -> Presence:
        """The presented token to act on."""
        ...

    async def write(self, p: Presence, w: CardOperation[Any]) -> Event:
        """Carry out one card write on the one write path."""
        ...

    def update_profiles(
        self, p: Presence, changed: list[ProfileInfo], drift: DriftEstimate | None = None
    ) -> None:
        """A write read profiles back (and maybe the clock): the presence keeps them."""
        ...


class CardOperation(ABC, Generic[R]):
    """One write to a card, described by the feature that asks for it (sync, burn, ...).

    :meth:`Station.write` runs it: under the reader's lock, after the generation check,
    ``prepare`` (may refuse: raise StationError); ``perform`` on a fresh connection in
    the card I/O pool; then ``succeeded`` or ``failed`` do the feature's bookkeeping and
    say what to record and publish. One instance per attempt, so it may keep what it
    learnt. Single-profile writes are :class:`CardWrite`; a family with its own session
    opens it on the connection.
    """

    kind: OperationKind
    busy: PresenceState
    #: False: refuse (busy) instead of queueing behind another operation on the reader.
    wait: bool = True

    @abstractmethod
    async def prepare(self, p: Presence) -> None:
        """Checks before touching the card (loop thread, reader locked)."""

    @abstractmethod
    def perform(self, conn: Connection, clock: HostClock, models: ModelTable) -> R:
        """The card I/O on a fresh connection (a pool thread)."""

    @abstractmethod
    def succeeded(self, p: Presence, result: R) -> Written | list[Written]:
        """Bookkeeping after the write (loop thread, reader still locked); a list for an
        operation that carried out several (a batch of burns: the last is its answer)."""

    @abstractmethod
    def failed(self, p: Presence, exc: StationError | TokenError) -> Written | list[Written] | None:
        """Bookkeeping after a refusal or failure; None: nothing to record or publish (a
        list: a batch's writes done before the failure, then the failure's)."""


class CardWrite(CardOperation[WriteResult]):
    """A write to a single-profile token: ``run`` on a fresh :class:`TokenSession`."""

    def perform(self, conn: Connection, clock: HostClock, models: ModelTable) -> WriteResult:
        return self.run(TokenSession(conn, models, clock))

    @abstractmethod
    def run(self, session: TokenSession) -> WriteResult:
        """The card I/O (a pool thread)."""
