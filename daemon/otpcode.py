"""The code a token should show, computed with pyotp (the only module that imports it)."""

from __future__ import annotations

import base64
import hashlib

import pyotp

from .token.secret import Secret
from .token.settings import HmacAlgorithm, TokenSettings

_DIGESTS = {HmacAlgorithm.SHA1: hashlib.sha1, HmacAlgorithm.SHA256: hashlib.sha256}

#: NIST SP 800-63B's minimum, which pyotp >= 2.12 enforces; tokens take shorter seeds.
RECOMMENDED_MIN_BITS = 112


class _TokenTOTP(pyotp.TOTP):
    """pyotp's TOTP without its 112-bit floor: the token computes codes for any seed it
    holds (1..63 bytes), so the expected code must be computed for it as well."""

    min_secret_length_bits = 8


def expected_code(seed: Secret, settings: TokenSettings, at: float) -> tuple[str, int]:
    """(code, UNIX second when it stops being valid) for ``seed`` at time ``at``."""
    b32 = base64.b32encode(seed.reveal()).decode("ascii").rstrip("=")
    otp = _TokenTOTP(b32, digits=6, digest=_DIGESTS[settings.hmac], interval=settings.period)
    counter = int(at // settings.period)
    return otp.at(int(at)), (counter + 1) * settings.period
