"""A seed that never shows its bytes: repr, str and format give a fingerprint only."""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # True for type checkers; saves importing typing at start-up
if TYPE_CHECKING:
    from collections.abc import Callable
    from hashlib import _Hash
    from typing import NoReturn


def _sha256_function() -> Callable[[bytes], _Hash]:
    """CPython's own SHA-256 (``_sha2``; ``_sha256`` before 3.12), or hashlib's.

    hashlib loads OpenSSL's libcrypto, which costs `tokenstation scan` about 5 ms for one
    fingerprint; the digests are the same.
    """
    for name in ("_sha2", "_sha256"):
        try:
            function: Callable[[bytes], _Hash] = importlib.import_module(name).sha256
        except (ImportError, AttributeError):
            continue
        return function
    import hashlib

    return hashlib.sha256


_sha256 = _sha256_function()


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
        return _sha256(self._value).digest() == _sha256(other._value).digest()

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        return f"Secret(fingerprint={self.fingerprint}, {len(self._value)} bytes)"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret is not picklable")


def fingerprint(raw: bytes) -> str:
    """First 8 hex characters of SHA-256 of ``raw``."""
    return _sha256(raw).hexdigest()[:8]
