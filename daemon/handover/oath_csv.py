"""privacyIDEA's OATH CSV: ``serial, hexseed, TOTP, digits, period``, one token a line.

The file has no hash column: privacyIDEA guesses the hash from the seed's length (64 hex
digits SHA-256, 128 SHA-512, anything else SHA-1). A record whose seed length would be
guessed wrong is left pending (use PSKC for it).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from tokenstation.daemon.handover.protection import Protection
from tokenstation.daemon.handover.record import BurnedToken
from tokenstation.daemon.provisioning.csvsafe import SafeWriter

SUMMARY = "privacyIDEA OATH CSV (hash guessed from the seed length)"
_BY_HEX_LENGTH = {64: "sha256", 128: "sha512", 56: "sha224", 96: "sha384"}


def guessed_hash(hex_length: int) -> str:
    """The hash privacyIDEA's CSV import takes for a seed of this many hex digits."""
    return _BY_HEX_LENGTH.get(hex_length, "sha1")


def refuse(r: BurnedToken) -> str | None:
    """A seed whose length privacyIDEA would read as another hash."""
    guess = guessed_hash(len(r.hex()))
    if guess != r.algorithm:
        return (
            f"privacyIDEA's OATH CSV would take this {len(r.seed)}-byte seed for "
            f"{guess.upper()}, not {r.algorithm.upper()}: export it as PSKC"
        )
    return None


def render(records: Sequence[BurnedToken], protection: Protection) -> bytes:
    """The CSV, LF line ends, no header (privacyIDEA's reader takes none)."""
    out = io.StringIO(newline="")
    w = SafeWriter(out, lineterminator="\n")
    for r in records:
        w.writerow((r.serial, r.hex(), "TOTP", r.digits, r.period))
    return out.getvalue().encode("utf-8")
