"""The single-profile family: one seed per token (C302-i, OTPC-P2-i, miniOTP, SafeID,
ExcelSecu: the model table in ``token/models.py``, token-protocol.md).

Known by its serial prefix after one GET INFO; its drift is measured to a tenth of a
second; a clock write rewrites its settings, so they must be known (the registry's, the
caller's or confirmed defaults), and on a model whose clock write erases the seed
(``restricted_sync``) it is never a sync at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tokenstation.daemon.cards import CardOperation, Presence, StationError, StationPort
from tokenstation.daemon.clocksync.policy import (
    ClockTrust,
    KnownSettings,
    SyncDecision,
    decide,
    known_settings,
)
from tokenstation.daemon.clocksync.single_sync import SyncWrite, settings_for
from tokenstation.daemon.config import Config
from tokenstation.daemon.events import ErrorKind, Origin
from tokenstation.daemon.families.base import AccountOptions, CardAtHand, Reading, is_of
from tokenstation.daemon.families.capabilities import ONE_SEED, Capabilities
from tokenstation.daemon.families.views import SINGLE as SINGLE_NAME
from tokenstation.daemon.provisioning.burn_write import BurnWrite, RequestedBurnWrite
from tokenstation.daemon.provisioning.context import BurnContext
from tokenstation.daemon.provisioning.queue import Job
from tokenstation.daemon.token.errors import InvalidInput
from tokenstation.daemon.token.models import Model
from tokenstation.daemon.token.session import (
    Connection,
    TokenSession,
    describe_drift,
)
from tokenstation.daemon.token.settings import TokenSettings


class SingleFamily:
    """The single-profile tokens."""

    name = SINGLE_NAME
    settings_from_registry = True

    def recognise(self, thing: object) -> bool:
        return is_of(self, thing)

    def by_reader(self, reader: str) -> bool:
        return False  # a reader's name never says it: the serial prefix does

    def probe(self, reader: str, conn: Connection) -> bool:
        return False  # the first GET INFO is its probe; nothing more is ever sent

    def examine(self, card: CardAtHand) -> Reading:
        session = TokenSession(card.conn, card.models, card.clock)
        ident = session.identify(
            on_first=lambda read, model: card.announce(self, read, model), first=card.first
        )
        return Reading(self, ident, precise=ident.drift.method == "rollover")

    def capabilities(self, model: Model | None = None) -> Capabilities:
        if model is None:
            return ONE_SEED
        return ONE_SEED.seed_erased_by_sync() if model.restricted_sync else ONE_SEED

    def decide(
        self,
        model: Model,
        drift_s: float,
        trust: ClockTrust,
        cfg: Config,
        registry: TokenSettings | None,
    ) -> SyncDecision:
        return decide(model, drift_s, known_settings(registry, cfg), trust, cfg)

    def sync_settings(
        self, station: StationPort, p: Presence, given: TokenSettings | None
    ) -> KnownSettings | None:
        return settings_for(station, p.serial, given)

    def sync_write(
        self,
        station: StationPort,
        known: KnownSettings | None,
        origin: Origin,
        *,
        confirm: bool,
        wait: bool,
    ) -> CardOperation[Any]:
        return SyncWrite(station, known, origin, confirm_untrusted_clock=confirm, wait=wait)

    def burn_write(self, ctx: BurnContext, job: Job, origin: Origin) -> CardOperation[Any]:
        return BurnWrite(ctx, job, origin)

    def delete_write(self, station: StationPort, profile: int) -> CardOperation[Any]:
        raise StationError(
            ErrorKind.INVALID,
            "a single-profile token has no profiles",
            "Profiles exist only on multi-profile tokens (Token2 Molto2).",
        )

    def account_burn(
        self, p: Presence, asked: AccountOptions
    ) -> Callable[[BurnContext, Job], CardOperation[Any]]:
        if asked.profile is not None or asked.title is not None:
            raise StationError(
                ErrorKind.INVALID,
                f"token {p.serial} ({p.model_name}) has no profiles",
                "Profiles and titles exist only on multi-profile tokens (Token2 Molto2).",
            )
        if asked.display_timeout is not None and p.model is not None:
            try:
                TokenSettings(display_timeout=asked.display_timeout)
            except (InvalidInput, ValueError) as exc:
                raise StationError(ErrorKind.INVALID, f"display_timeout: {exc}") from None
        return lambda ctx, job: RequestedBurnWrite(
            ctx, job, replace=asked.replace, display_timeout=asked.display_timeout
        )

    async def consider(
        self,
        ctx: BurnContext,
        p: Presence,
        waiting: list[Job],
        every: Callable[[], list[Job]] | None,
    ) -> None:
        return None  # one seed: the Provisioner chooses the job (provisioning/choice.py)

    # -- words -------------------------------------------------------------------------------

    def drift_words(self, drift_s: float | None) -> str:
        return "unknown" if drift_s is None else describe_drift(drift_s)

    def view_fields(self, p: Presence) -> dict[str, Any]:
        return {"family": self.name, "name_words": f"Token {p.serial} ({p.model_name})"}

    def log_words(self, p: Presence, verdict: str) -> str:
        assert p.ident is not None
        d = p.ident.drift
        return f"token {p.serial}: {describe_drift(d.drift_s)} (±{d.uncertainty_s:.3f} s){verdict}"


SINGLE = SingleFamily()
