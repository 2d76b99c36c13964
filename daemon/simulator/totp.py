"""RFC 6238 as the token's firmware computes it (stdlib only, independent of pyotp)."""

from __future__ import annotations

import hashlib
import hmac

_DIGESTS = {1: hashlib.sha1, 2: hashlib.sha256}


def totp(seed: bytes, unix_time: float, period: int, hmac_code: int, digits: int = 6) -> str:
    """The code shown at ``unix_time``: HMAC(seed, floor(t / period)), dynamic truncation."""
    counter = int(unix_time // period)
    mac = hmac.new(seed, counter.to_bytes(8, "big"), _DIGESTS[hmac_code]).digest()
    offset = mac[-1] & 0x0F
    value = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)
