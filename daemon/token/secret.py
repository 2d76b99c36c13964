"""A seed that never shows its bytes: repr, str and format give a fingerprint only."""

from __future__ import annotations

import hashlib
from typing import NoReturn

MAX_SEED_BYTES = 63


class Secret:
    """Raw TOTP seed bytes wrapped so that logs, exceptions and JSON cannot leak them.

    ``reveal()`` is the one way to get the bytes back; call it only where the bytes
    are about to be encrypted or hashed.
    """

    __slots__ = ("_value",)

    def __init__(self, value: bytes) -> None:
        if not isinstance(value, bytes | bytearray):
            raise TypeError("a Secret holds bytes")
        self._value = bytes(value)

    def reveal(self) -> bytes:
        """The raw seed bytes."""
        return self._value

    @property
    def fingerprint(self) -> str:
        """First 8 hex characters of SHA-256 of the raw bytes: safe to show and log."""
        return fingerprint(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hashlib.sha256(self._value).digest() == hashlib.sha256(other._value).digest()

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        return f"Secret(fingerprint={self.fingerprint}, {len(self._value)} bytes)"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret is not picklable")


def fingerprint(raw: bytes) -> str:
    """First 8 hex characters of SHA-256 of ``raw``."""
    return hashlib.sha256(raw).hexdigest()[:8]
