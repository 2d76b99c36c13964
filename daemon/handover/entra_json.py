"""Microsoft Graph's bulk ``hardwareOathDevices`` body (beta), which carries SHA-256 too.

``PATCH /beta/directory/authenticationMethodDevices/hardwareOathDevices`` with
``{"@context": "#$delta", "value": [{"@contentId": "1", "serialNumber", "manufacturer",
"model", "secretKey" (Base32), "timeIntervalInSeconds", "hashFunction"}]}``. Assigning
a user takes their object id (``assignTo``), which the station does not know: it is
left to the admin center or a second call.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from tokenstation.daemon.handover.protection import Protection
from tokenstation.daemon.handover.record import BurnedToken

SUMMARY = "Microsoft Graph hardwareOathDevices bulk body (SHA-1/SHA-256, 30/60 s)"
HASHES = {"sha1": "hmacsha1", "sha256": "hmacsha256"}


def refuse(r: BurnedToken) -> str | None:
    """What Graph's hardware OATH inventory cannot carry."""
    if r.algorithm not in HASHES:
        return f"Graph takes hmacsha1 or hmacsha256, not {r.algorithm}"
    if r.period not in (30, 60):
        return f"Graph takes timeIntervalInSeconds 30 or 60, not {r.period}"
    if r.digits != 6:
        return f"Graph's hardware tokens show 6 digits, not {r.digits}"
    return None


def render(records: Sequence[BurnedToken], protection: Protection) -> bytes:
    """The JSON body, two-space indented, one final newline."""
    body = {
        "@context": "#$delta",
        "value": [
            {
                "@contentId": str(n),
                "serialNumber": r.serial,
                "manufacturer": r.manufacturer,
                "model": r.model,
                "secretKey": r.base32(),
                "timeIntervalInSeconds": r.period,
                "hashFunction": HASHES[r.algorithm],
            }
            for n, r in enumerate(records, 1)
        ],
    }
    return (json.dumps(body, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
