"""The token-family seam: the one small protocol every family implements.

A family is how tokenstation knows one kind of token end to end: how it is recognised
(by its reader's name, or by one public-data read where that is safe), how it is read
(examine -> :class:`Reading`), what it can hold (:class:`Capabilities`: the one "can this
token take this account" rule), how its clock is set and how it is decided whether to
(the sync write and decision), and how views name it. The Station, ClockSync, the
Provisioner, intake, the CLI and the tray ask the family (``table.family_of``) and
never test what a token holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from tokenstation.daemon.cards import CardOperation, FamilyView, Presence, StationPort
from tokenstation.daemon.clocksync.policy import ClockTrust, KnownSettings, SyncDecision
from tokenstation.daemon.config import Config
from tokenstation.daemon.events import Origin
from tokenstation.daemon.families.capabilities import Capabilities
from tokenstation.daemon.families.views import SINGLE
from tokenstation.daemon.provisioning.context import BurnContext
from tokenstation.daemon.provisioning.queue import Job
from tokenstation.daemon.token.models import Model, ModelTable
from tokenstation.daemon.token.profiles import ProfileInfo
from tokenstation.daemon.token.session import Connection, HostClock, Identification, TimedInfo
from tokenstation.daemon.token.settings import TokenSettings

#: Told of a token at its first read, before the precise drift (family, read, model);
#: False: no precise measurement (a burn follows at once and measures it after).
Announce = Callable[["Family", TimedInfo, Model], bool]


@dataclass(frozen=True)
class CardAtHand:
    """A card to examine, on the card I/O pool: its connection and clock, the station's
    configuration and model table, its first public read when one was made to recognise
    it (None: none yet), and whom to tell of a token at its first read."""

    conn: Connection
    clock: HostClock
    cfg: Config
    models: ModelTable
    first: TimedInfo | None
    announce: Announce


@dataclass(frozen=True)
class AccountOptions:
    """BurnAccount's options: a profile and its title (a token with profiles), or the
    replace confirmation and display timeout (a single-profile token)."""

    profile: int | None = None
    title: str | None = None
    replace: bool = False
    display_timeout: int | None = None


@dataclass(frozen=True)
class Reading:
    """What examining a card read: who it is, its drift, and (a token with profiles)
    every profile's public data."""

    family: Family
    ident: Identification
    profiles: list[ProfileInfo] | None = None
    #: Measured as precisely as the family measures (False: one read, a burn follows).
    precise: bool = True


class Family(FamilyView, Protocol):
    """One token family (``single.SINGLE``, ``molto2.MOLTO2``)."""

    #: The family's key in views (``PresenceView.family``) and logs.
    name: str
    #: Its sync decision needs the registry's settings for the token.
    settings_from_registry: bool

    def recognise(self, thing: object) -> bool:
        """Whether ``thing`` (a Reading, a Presence, a presence's wire view, or a family
        name) is of this family."""
        ...

    def by_reader(self, reader: str) -> bool:
        """Known by its reader's name alone (nothing is sent to find out)."""
        ...

    def probe(self, reader: str, conn: Connection) -> bool:
        """A card whose serial no model matches: is it one of ours? At most one public
        read, and only where no real token can be (vpcd); never in a loop."""
        ...

    def examine(self, card: CardAtHand) -> Reading:
        """Read the card once per placement (a pool thread)."""
        ...

    def capabilities(self, model: Model | None = None) -> Capabilities:
        """What this family's token (of ``model``, where models differ) can hold."""
        ...

    def decide(
        self,
        model: Model,
        drift_s: float,
        trust: ClockTrust,
        cfg: Config,
        registry: TokenSettings | None,
    ) -> SyncDecision:
        """Verdict, safety, offer and auto-sync for one measurement."""
        ...

    def sync_settings(
        self, station: StationPort, p: Presence, given: TokenSettings | None
    ) -> KnownSettings | None:
        """The settings a clock write rewrites (None: none known, or read from the
        token); raises StationError where ``given`` makes no sense for this token."""
        ...

    def sync_write(
        self,
        station: StationPort,
        known: KnownSettings | None,
        origin: Origin,
        *,
        confirm: bool,
        wait: bool,
    ) -> CardOperation[Any]:
        """The clock write for a presented token of this family."""
        ...

    def burn_write(self, ctx: BurnContext, job: Job, origin: Origin) -> CardOperation[Any]:
        """The burn of a queued job onto (or into) a presented token of this family."""
        ...

    def delete_write(self, station: StationPort, profile: int) -> CardOperation[Any]:
        """The delete of one profile's seed (its title kept); a token without profiles
        refuses (StationError)."""
        ...

    def account_burn(
        self, p: Presence, asked: AccountOptions
    ) -> Callable[[BurnContext, Job], CardOperation[Any]]:
        """BurnAccount's options checked for this token (StationError where one makes no
        sense for it), and the write of the caller's job (once it is queued)."""
        ...

    async def consider(
        self,
        ctx: BurnContext,
        p: Presence,
        waiting: list[Job],
        every: Callable[[], list[Job]] | None,
    ) -> None:
        """A token with profiles: offer or burn the next jobs into its free profiles, one
        after another (``waiting``: a page of the jobs it may take; ``every``: all of
        them, when the page may not hold one it takes). A one-seed token's job is chosen
        by the Provisioner itself (``provisioning/choice.py``)."""

    def log_words(self, p: Presence, verdict: str) -> str:
        """One log line for a measured token (``verdict``: the station's words for the
        verdict, ", beyond the 2 s threshold", for the family to place or leave out)."""
        ...


def is_of(family: Family, thing: object) -> bool:
    """Whether ``thing`` (a Reading, a Presence, a presence's wire view, or a family name)
    is of ``family`` (a view that names no family is a single-profile token's)."""
    if isinstance(thing, Reading | Presence):
        return thing.family is family
    if isinstance(thing, Mapping):
        return bool(thing.get("family", SINGLE) == family.name)
    return thing == family.name
