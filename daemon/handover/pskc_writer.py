"""PSKC (RFC 6030) in the narrow shape privacyIDEA, LinOTP and FreeIPA all read (python-pskc).

The one module that imports python-pskc. Each key: ``Key/@Id`` = ``DeviceInfo/SerialNo``
= the printed serial, algorithm ``urn:ietf:params:xml:ns:keyprov:pskc:totp`` (the colon
form: privacyIDEA takes the text after the last colon), ``Suite`` ``SHA1`` or
``SHA256``, ``ResponseFormat`` DECIMAL with the digits, ``Time`` 0 (FreeIPA refuses any
other), ``TimeInterval`` the period; no TimeDrift (privacyIDEA reads it as seconds), no
PIN policy. The secret is encrypted AES-128-CBC with an HMAC-SHA1 MAC (the only pair
privacyIDEA reads), keyed by a 16-byte pre-shared key or by PBKDF2 from a password.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from pskc import PSKC

from tokenstation.daemon.handover.protection import Protection
from tokenstation.daemon.handover.record import BurnedToken

SUMMARY = "PSKC (RFC 6030), encrypted: privacyIDEA, LinOTP, FreeIPA"
TOTP = "urn:ietf:params:xml:ns:keyprov:pskc:totp"
CIPHER = "aes128-cbc"
SUITES = {"sha1": "SHA1", "sha256": "SHA256"}


def refuse(r: BurnedToken) -> str | None:
    """PSKC carries SHA-1 and SHA-256, any digits and period."""
    return None if r.algorithm in SUITES else f"PSKC is written for SHA1/SHA256, not {r.algorithm}"


def render(records: Sequence[BurnedToken], protection: Protection) -> bytes:
    """The PSKC document; encrypted unless ``protection.plaintext``."""
    doc = PSKC()
    for r in records:
        doc.add_key(
            id=r.serial,
            serial=r.serial,
            manufacturer=r.manufacturer,
            model=r.model,
            algorithm=TOTP,
            algorithm_suite=SUITES[r.algorithm],
            response_encoding="DECIMAL",
            response_length=r.digits,
            time_offset=0,
            time_interval=r.period,
            friendly_name=r.label,
            secret=r.seed.reveal(),
        )
    if protection.psk is not None:
        doc.encryption.setup_preshared_key(key=protection.psk, algorithm=CIPHER)
    elif protection.password is not None:
        doc.encryption.setup_pbkdf2(protection.password, algorithm=CIPHER)
    elif not protection.plaintext:
        raise ValueError("a PSKC file is encrypted: give a pre-shared key or a password")
    out = io.BytesIO()
    doc.write(out)
    return out.getvalue()
