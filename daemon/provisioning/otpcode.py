"""The code a token should show, computed with pyotp (the only module that imports it)."""

from __future__ import annotations

import base64
import hashlib

import pyotp

from tokenstation.daemon.token.secret import Secret
from tokenstation.daemon.token.settings import HmacAlgorithm, TokenSettings

_DIGESTS = {HmacAlgorithm.SHA1: hashlib.sha1, HmacAlgorithm.SHA256: hashlib.sha256}


class _TokenTOTP(pyotp.TOTP):
    """pyotp's TOTP without its 112-bit floor (``limits.RECOMMENDED_MIN_BITS``): the token
    computes codes for any seed it holds (1..63 bytes), so the expected code must be
    computed for it as well."""

    min_secret_length_bits = 8


def expected_code(
    seed: Secret, settings: TokenSettings, at: float, digits: int = 6
) -> tuple[str, int]:
    """(code, UNIX second when it stops being valid) for ``seed`` at time ``at``."""
    b32 = base64.b32encode(seed.reveal()).decode("ascii").rstrip("=")
    # pyotp computes 6..10 digits; a 4-digit code is the last 4 of the 6-digit one
    # (value mod 10^4 = (value mod 10^6) mod 10^4).
    otp = _TokenTOTP(
        b32, digits=max(digits, 6), digest=_DIGESTS[settings.hmac], interval=settings.period
    )
    counter = int(at // settings.period)
    return otp.at(int(at))[-digits:], (counter + 1) * settings.period
