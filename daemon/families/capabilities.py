"""What a token can hold, and the one rule for "can this token take this account".

Light (a record, no dataclasses, no typing, no token layer): the drop folder's judging
and `tokenstation scan` read it at start-up without loading the families. Each family
states its own :class:`Capabilities`; :data:`ONE_SEED` is the single-profile tokens'
(the model table of token-protocol.md), which every family takes, so a queued job fits
any token.
"""

from __future__ import annotations

from tokenstation.daemon.records import Frozen
from tokenstation.daemon.token.limits import MAX_SEED_BYTES, PERIODS

TYPE_CHECKING = False  # True for type checkers; saves importing typing at start-up
if TYPE_CHECKING:
    from collections.abc import Sized
    from typing import Protocol

    class AccountLike(Protocol):
        """What the rule reads of an account (``intake.otpauth.OtpAccount`` is one)."""

        @property
        def type(self) -> str: ...
        @property
        def algorithm(self) -> str: ...
        @property
        def digits(self) -> int: ...
        @property
        def period(self) -> int: ...
        @property
        def secret(self) -> Sized: ...


class Capabilities(Frozen):
    """What one family's tokens hold and how their clock may be set.

    ``noun``: how a refusal names the tokens ("these tokens", "Molto2 profiles");
    ``profiles``: seeds one token holds (1, or its profile count); ``sync_keeps_seed``:
    a clock write keeps the seed (False: it erases it, so a re-burn, never a sync);
    ``settings_per_profile``: settings are read from the token, none need be known.
    """

    noun: str
    profiles: int
    sync_keeps_seed: bool
    algorithms: tuple[str, ...]
    digits: tuple[int, ...]
    periods: tuple[int, ...]
    max_seed_bytes: int
    settings_per_profile: bool

    def __init__(
        self,
        noun: str,
        profiles: int,
        sync_keeps_seed: bool,
        *,
        algorithms: tuple[str, ...] = ("SHA1", "SHA256"),
        digits: tuple[int, ...] = (6,),
        periods: tuple[int, ...] = PERIODS,
        max_seed_bytes: int = MAX_SEED_BYTES,
        settings_per_profile: bool = False,
    ) -> None:
        self._set(
            noun=noun,
            profiles=profiles,
            sync_keeps_seed=sync_keeps_seed,
            algorithms=algorithms,
            digits=digits,
            periods=periods,
            max_seed_bytes=max_seed_bytes,
            settings_per_profile=settings_per_profile,
        )

    def refusals(self, account: AccountLike) -> list[str]:
        """Why this token cannot hold ``account``, one reason per field (empty: it can)."""
        out = []
        if account.type != "totp":
            out.append(
                f"type: HOTP (counter-based) codes cannot be burned; {self.noun} are TOTP only"
            )
        if account.algorithm not in self.algorithms:
            out.append(
                f"algorithm: {account.algorithm} is not supported; {self.noun} take "
                + _either(self.algorithms)
            )
        if account.digits not in self.digits:
            out.append(
                f"digits: {account.digits} digits cannot be shown; {self.noun} show "
                + _either(self.digits)
            )
        if account.period not in self.periods:
            out.append(
                f"period: {account.period} s is not supported; {self.noun} step "
                + _either(self.periods)
                + " s"
            )
        size = len(account.secret)
        if not 1 <= size <= self.max_seed_bytes:
            out.append(f"secret: {size} bytes; {self.noun} hold 1 to {self.max_seed_bytes} bytes")
        return out

    def takes(self, other: Capabilities) -> bool:
        """Whether every account ``other`` takes fits here too."""
        return (
            set(other.algorithms) <= set(self.algorithms)
            and set(other.digits) <= set(self.digits)
            and set(other.periods) <= set(self.periods)
            and other.max_seed_bytes <= self.max_seed_bytes
        )

    def seed_erased_by_sync(self) -> Capabilities:
        """The same, for a model whose clock write erases its seed."""
        return Capabilities(
            self.noun,
            self.profiles,
            False,
            algorithms=self.algorithms,
            digits=self.digits,
            periods=self.periods,
            max_seed_bytes=self.max_seed_bytes,
            settings_per_profile=self.settings_per_profile,
        )


def _either(values: tuple[object, ...]) -> str:
    words = [str(v) for v in values]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


#: The single-profile tokens (C302-i, OTPC-P2-i, miniOTP, SafeID, ExcelSecu): one seed,
#: SHA1 or SHA256, 6 digits, 30 or 60 s. Whether a clock write keeps the seed is the
#: model's (``Model.restricted_sync``); this is the family's default.
ONE_SEED = Capabilities("these tokens", 1, True)
