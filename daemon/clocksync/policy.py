"""May this token's clock be set, should a sync be offered, may it happen on its own?

Pure decisions from facts: the model, the measured drift, what is known of the token's
settings, whether the host clock is trusted, and the configuration. Every "no" comes
with the reason in words an operator can act on.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tokenstation.daemon.config import Config
from tokenstation.daemon.events import SyncVerdict
from tokenstation.daemon.token.models import Model
from tokenstation.daemon.token.session import describe_drift
from tokenstation.daemon.token.settings import TokenSettings


@dataclass(frozen=True)
class ClockTrust:
    """Is the host clock fit to set tokens from?"""

    trusted: bool
    source: str  # "timedated", "configuration", "unavailable"
    reason: str

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form."""
        return {"trusted": self.trusted, "source": self.source, "reason": self.reason}


@dataclass(frozen=True)
class KnownSettings:
    """The token's settings and where we know them from."""

    settings: TokenSettings
    source: str  # "registry" (this station wrote them), "configured defaults", "caller"


@dataclass(frozen=True)
class SyncDecision:
    """What to do about one measured token."""

    verdict: SyncVerdict
    sync_safe: bool  # a clock write keeps the seed and the settings are known
    sync_offered: bool  # safe and beyond the threshold: the one-click action
    needs_confirmation: bool  # the host clock is not trusted: a person must say yes
    auto_sync: bool  # the daemon will sync it by itself now
    reason: str  # why sync is not safe / not automatic ("" when nothing to say)
    settings: KnownSettings | None

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form."""
        out: dict[str, object] = {
            "verdict": self.verdict,
            "sync_safe": self.sync_safe,
            "sync_offered": self.sync_offered,
            "needs_confirmation": self.needs_confirmation,
            "auto_sync": self.auto_sync,
            "reason": self.reason,
        }
        if self.settings is not None:
            out["settings"] = self.settings.settings.as_dict()
            out["settings_source"] = self.settings.source
        return out


def known_settings(registry: TokenSettings | None, cfg: Config) -> KnownSettings | None:
    """The registry's settings, else the operator-confirmed defaults, else nothing."""
    if registry is not None:
        return KnownSettings(registry, "registry")
    if cfg.token_defaults.confirmed:
        return KnownSettings(cfg.token_defaults.settings(), "configured defaults")
    return None


def unsafe_reason(model: Model, settings: KnownSettings | None) -> str:
    """Why a clock write would be unsafe for this token, or "" when it is safe."""
    if not model.programmable:
        return (
            "tokenstation does not know this model (no serial prefix in the model table "
            "matches), so it never writes to it; add a [[vendor]] entry with its key if it is "
            "programmable"
        )
    if model.restricted_sync:
        return (
            f"the {model.name} erases its seed when its clock is set: it needs a re-burn "
            "with the seed in hand, not a clock sync"
        )
    if settings is None:
        return (
            "its HMAC, time step and display timeout are unknown (this station did not "
            "program it and no confirmed [token_defaults] are configured); a clock write "
            "rewrites them all"
        )
    return ""


def burn_follows(drift_s: float, cfg: Config) -> SyncDecision:
    """A token station mode burns at once: no sync offered or made (the burn sets the
    clock); the verdict is what its one read shows."""
    beyond = abs(drift_s) > cfg.drift_threshold_s
    return SyncDecision(
        verdict=SyncVerdict.DRIFT if beyond else SyncVerdict.IN_TIME,
        sync_safe=False,
        sync_offered=False,
        needs_confirmation=False,
        auto_sync=False,
        reason="a burn follows at once and sets its clock",
        settings=None,
    )


def decide(
    model: Model,
    drift_s: float,
    settings: KnownSettings | None,
    trust: ClockTrust,
    cfg: Config,
) -> SyncDecision:
    """Verdict, sync safety, the one-click offer and auto-sync for one measurement."""
    beyond = abs(drift_s) > cfg.drift_threshold_s
    verdict = (
        SyncVerdict.READ_ONLY
        if not model.programmable
        else (SyncVerdict.DRIFT if beyond else SyncVerdict.IN_TIME)
    )
    unsafe = unsafe_reason(model, settings)
    safe = not unsafe
    reason = unsafe
    auto = False
    if safe and beyond:
        if not trust.trusted:
            reason = f"the host clock is not trusted: {trust.reason}; a sync needs confirmation"
        elif not cfg.auto_sync:
            reason = ""
        elif abs(drift_s) > cfg.auto_sync_max_drift_s:
            reason = (
                f"{describe_drift(drift_s)} is beyond the auto-sync limit of "
                f"{cfg.auto_sync_max_drift_s:g} s; a person should look at this token"
            )
        else:
            auto = True
    return SyncDecision(
        verdict=verdict,
        sync_safe=safe,
        sync_offered=safe and beyond,
        needs_confirmation=safe and not trust.trusted,
        auto_sync=auto,
        reason=reason,
        settings=settings,
    )


def molto2_decision(model: Model, drift_s: float, trust: ClockTrust, cfg: Config) -> SyncDecision:
    """As :func:`decide`, for a Molto2: its sync is time-only per profile, with each
    profile's settings read from it, so no settings need to be known or confirmed."""
    read_back = KnownSettings(cfg.token_defaults.settings(), "read from each profile")
    return replace(decide(model, drift_s, read_back, trust, cfg), settings=None)
