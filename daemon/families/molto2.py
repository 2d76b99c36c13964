"""The Molto2 family: Token2's multi-profile token (50 or 100 profiles, a clock each).

Recognised by its reader's product name (nothing sent), or behind vsmartcard's virtual
reader by one public-data read; read by its own session (``token/molto2_session.py``):
GET INFO and every profile's public data. Its clock write is time only, per profile, and
keeps every seed and setting, so its sync needs no settings known or confirmed. Its
drift is one whole-second figure (the largest of its seeded profiles' clocks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from tokenstation.daemon.cards import CardOperation, Presence, StationError, StationPort
from tokenstation.daemon.clocksync.policy import ClockTrust, KnownSettings, SyncDecision, decide
from tokenstation.daemon.config import Config
from tokenstation.daemon.events import ErrorKind, Origin, ProfileView
from tokenstation.daemon.families.base import AccountOptions, CardAtHand, Reading, is_of
from tokenstation.daemon.families.capabilities import Capabilities
from tokenstation.daemon.families.molto2_batch import consider as consider_profiles
from tokenstation.daemon.families.molto2_burn import (
    AccountBurnWrite,
    Molto2BurnWrite,
    choose_profile_job,
)
from tokenstation.daemon.families.molto2_delete import Molto2DeleteWrite
from tokenstation.daemon.families.molto2_settings import customer_key
from tokenstation.daemon.families.molto2_sync import Molto2SyncWrite
from tokenstation.daemon.provisioning.context import BurnContext
from tokenstation.daemon.provisioning.queue import Job
from tokenstation.daemon.token import molto2 as m
from tokenstation.daemon.token.errors import InvalidInput
from tokenstation.daemon.token.models import Model
from tokenstation.daemon.token.molto2_session import (
    Molto2Session,
    is_virtual_reader,
    molto2_drift,
    molto2_drift_words,
    molto2_model,
    recognise,
)
from tokenstation.daemon.token.session import Connection, Identification
from tokenstation.daemon.token.settings import TokenSettings

#: What a Molto2 profile holds (token-protocol.md 6): SHA1 or SHA256, 4 to 10 digits.
MOLTO2_TAKES = Capabilities(
    "Molto2 profiles", m.PROFILES, True, digits=m.DIGITS, settings_per_profile=True
)


def molto2_decision(model: Model, drift_s: float, trust: ClockTrust, cfg: Config) -> SyncDecision:
    """As ``policy.decide``, for a Molto2: its sync is time-only per profile, with each
    profile's settings read from it, so no settings need to be known or confirmed."""
    read_back = KnownSettings(cfg.token_defaults.settings(), "read from each profile")
    return replace(decide(model, drift_s, read_back, trust, cfg), settings=None)


def profile_view(info: m.ProfileInfo) -> ProfileView:
    """A Molto2 profile's public data as events carry it (nothing here is secret)."""
    hmac = info.hmac
    return ProfileView(
        profile=info.index,
        title=info.title,
        seed_present=info.seed_present,
        hmac=hmac.label if hmac is not None else f"code {info.algorithm}",
        digits=info.digits,
        period=info.period,
    )


class Molto2Family:
    """Token2's Molto2 and Molto2v2."""

    name = "molto2"
    settings_from_registry = False

    def recognise(self, thing: object) -> bool:
        return is_of(self, thing)

    def by_reader(self, reader: str) -> bool:
        return m.is_molto2_reader(reader)

    def probe(self, reader: str, conn: Connection) -> bool:
        return is_virtual_reader(reader) and recognise(reader, conn)

    def examine(self, card: CardAtHand) -> Reading:
        key = customer_key(card.cfg)
        session = Molto2Session(card.conn, key, card.clock)
        first = card.first if card.first is not None else session.read_info()
        drifts: dict[int, float] = {}
        profiles = session.read_profiles(drifts=drifts)
        drift = molto2_drift(drifts, first)
        model = molto2_model(len(profiles), key)
        at = first.midpoint
        ident = Identification(first.info.serial, model, round(at + drift.drift_s), at, drift)
        return Reading(self, ident, profiles)

    def capabilities(self, model: Model | None = None) -> Capabilities:
        return MOLTO2_TAKES

    def decide(
        self,
        model: Model,
        drift_s: float,
        trust: ClockTrust,
        cfg: Config,
        registry: TokenSettings | None,
    ) -> SyncDecision:
        return molto2_decision(model, drift_s, trust, cfg)

    def sync_settings(
        self, station: StationPort, p: Presence, given: TokenSettings | None
    ) -> KnownSettings | None:
        if given is not None:
            raise StationError(
                ErrorKind.INVALID,
                f"Molto2 {p.serial} keeps settings per profile and they are read from each",
                "Leave the settings out; nothing was written.",
            )
        return None

    def sync_write(
        self,
        station: StationPort,
        known: KnownSettings | None,
        origin: Origin,
        *,
        confirm: bool,
        wait: bool,
    ) -> CardOperation[Any]:
        return Molto2SyncWrite(station, origin, confirm_untrusted_clock=confirm, wait=wait)

    def burn_write(self, ctx: BurnContext, job: Job, origin: Origin) -> CardOperation[Any]:
        return Molto2BurnWrite(ctx, job, origin)

    def delete_write(self, station: StationPort, profile: int) -> CardOperation[Any]:
        return Molto2DeleteWrite(station, profile)

    def account_burn(
        self, p: Presence, asked: AccountOptions
    ) -> Callable[[BurnContext, Job], CardOperation[Any]]:
        if asked.replace or asked.display_timeout is not None:
            raise StationError(
                ErrorKind.INVALID,
                f"Molto2 {p.serial}: replace and display_timeout are for single-profile tokens",
                "A profile is burned only where no seed is, with the daemon's display timeout.",
            )
        profiles = len(p.profiles or ())
        if asked.profile is not None and not 0 <= asked.profile < profiles:
            raise StationError(
                ErrorKind.INVALID,
                f"Molto2 {p.serial} has profiles 0..{profiles - 1}, not {asked.profile}",
                "See the profiles with `tokenstation profiles`.",
            )
        if asked.title is not None:
            try:
                m.title_bytes(asked.title)
            except (InvalidInput, ValueError) as exc:
                what = exc.message if isinstance(exc, InvalidInput) else str(exc)
                raise StationError(
                    ErrorKind.INVALID,
                    f"title: {what}",
                    "Give a shorter title; nothing was written.",
                ) from None
        return lambda ctx, job: AccountBurnWrite(ctx, job, asked.profile, asked.title)

    async def consider(
        self,
        ctx: BurnContext,
        p: Presence,
        waiting: list[Job],
        every: Callable[[], list[Job]] | None,
    ) -> None:
        free = p.free_profiles()
        if every is not None and not choose_profile_job(p.serial, free, waiting, ctx.cfg.mode).job:
            waiting = every()  # the page held none it takes: look at every waiting job
        await consider_profiles(ctx, p, waiting)

    # -- words -------------------------------------------------------------------------------

    def drift_words(self, drift_s: float | None) -> str:
        return molto2_drift_words(drift_s)

    def view_fields(self, p: Presence) -> dict[str, Any]:
        profiles = p.profiles or []
        free = p.free_profiles()
        used = len(profiles) - len(free)
        return {
            "family": self.name,
            "name_words": f"{p.model_name} {p.serial}",
            "holds_words": f"{used} of {len(profiles)} profiles used",
            "profiles": tuple(profile_view(i) for i in profiles),
            "profiles_total": len(profiles),
            "profiles_used": used,
            "next_free_profile": free[0] if free else None,
        }

    def log_words(self, p: Presence, verdict: str) -> str:
        assert p.ident is not None
        profiles = p.profiles or []
        return (
            f"Molto2 {p.serial} on {p.reader}: {len(profiles) - len(p.free_profiles())} of "
            f"{len(profiles)} profiles hold a seed, "
            f"clock {molto2_drift_words(p.ident.drift.drift_s)}"
        )


MOLTO2 = Molto2Family()
