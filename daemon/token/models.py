"""Which token is this? Serial prefix -> model, restricted-sync flag, vendor family, key.

The built-in table is Token2's (token-protocol.md 4.6). Anything else is read-only
unless the configuration names a vendor family with its own key: keys are never
guessed, and the Token2 key is never sent to a token not known to take it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from tokenstation.daemon.token.crypto import TOKEN2_KEY
from tokenstation.daemon.token.settings import DISPLAY_TIMEOUT_CODES, PERIODS, HmacAlgorithm


@dataclass(frozen=True)
class VendorFamily:
    """A family of tokens that share one protocol and one SM4 key."""

    name: str
    key: bytes | None = field(default=None, repr=False)

    @property
    def can_authenticate(self) -> bool:
        """True when the key is known."""
        return self.key is not None


TOKEN2 = VendorFamily("token2-single-profile", TOKEN2_KEY)
UNKNOWN_FAMILY = VendorFamily("unknown")


@dataclass(frozen=True)
class Model:
    """A token model and what it can do."""

    prefix: str
    name: str
    family: VendorFamily
    restricted_sync: bool
    digits: int = 6
    algorithms: tuple[HmacAlgorithm, ...] = (HmacAlgorithm.SHA1, HmacAlgorithm.SHA256)
    periods: tuple[int, ...] = PERIODS
    display_timeouts: tuple[int, ...] = tuple(DISPLAY_TIMEOUT_CODES)

    @property
    def programmable(self) -> bool:
        """True when tokenstation may write to it (the model is known and its key too)."""
        return self.family.can_authenticate

    @property
    def clock_write_keeps_seed(self) -> bool:
        """True on unrestricted models (C302-i, OTPC-P1-i, miniOTP-2-i)."""
        return self.programmable and not self.restricted_sync


def unknown_model(serial: str) -> Model:
    """The read-only model given to a serial no table entry matches."""
    return Model(prefix="", name="unknown", family=UNKNOWN_FAMILY, restricted_sync=True)


BUILTIN_MODELS: tuple[Model, ...] = (
    Model("8659612", "OTPC-P1-i", TOKEN2, restricted_sync=False),
    Model("8659622", "OTPC-P2-i", TOKEN2, restricted_sync=True),
    Model("8659621", "OTPC-P2-i-NB", TOKEN2, restricted_sync=True),
    Model("8659600", "miniOTP-2-i", TOKEN2, restricted_sync=False),
    Model("8659601", "miniOTP-3-i", TOKEN2, restricted_sync=True),
    Model("8659609", "miniOTP-3-i-NB", TOKEN2, restricted_sync=True),
    Model("8659610", "C301-i", TOKEN2, restricted_sync=True),
    Model("8659632", "C302-i", TOKEN2, restricted_sync=False),
)


class ModelTable:
    """Serial -> model by longest prefix; extra entries come from the configuration."""

    def __init__(self, extra: Iterable[Model] = ()) -> None:
        self._models = list(BUILTIN_MODELS) + list(extra)
        for m in self._models:
            if not m.prefix:
                raise ValueError(f"model {m.name} needs a serial prefix")

    def lookup(self, serial: str) -> Model:
        """The model whose prefix is the longest match for ``serial``, or an unknown model."""
        best: Model | None = None
        for m in self._models:
            if serial.startswith(m.prefix) and (best is None or len(m.prefix) > len(best.prefix)):
                best = m
        return best if best is not None else unknown_model(serial)

    @property
    def models(self) -> tuple[Model, ...]:
        """Every entry, built-in first."""
        return tuple(self._models)
