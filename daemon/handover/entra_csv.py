"""Microsoft Entra ID's OATH token CSV upload (SHA-1 only: the file has no hash column).

Header ``upn,serial number,secret key,time interval,manufacturer,model``; the secret in
Base32 without padding (at most 128 characters); time interval 30 or 60; 6 digits;
lines end CRLF (RFC 4180). Cells go through csvsafe (no spreadsheet formula).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from tokenstation.daemon.handover.protection import Protection
from tokenstation.daemon.handover.record import BurnedToken
from tokenstation.daemon.provisioning.csvsafe import SafeWriter

SUMMARY = "Entra ID OATH token CSV upload (SHA-1, 6 digits, 30/60 s)"
HEADER = ("upn", "serial number", "secret key", "time interval", "manufacturer", "model")
MAX_SECRET = 128


def refuse(r: BurnedToken) -> str | None:
    """What Entra's CSV cannot carry."""
    if r.algorithm != "sha1":
        return (
            f"Entra's CSV has no hash column (SHA-1 only); {r.algorithm.upper()} goes by "
            "`--format entra-json` (Graph) instead"
        )
    if r.period not in (30, 60):
        return f"Entra takes a time interval of 30 or 60 s, not {r.period}"
    if r.digits != 6:
        return f"Entra takes 6-digit codes, not {r.digits}"
    if len(r.base32()) > MAX_SECRET:
        return f"Entra takes a secret of at most {MAX_SECRET} Base32 characters"
    return None


def render(records: Sequence[BurnedToken], protection: Protection) -> bytes:
    """The CSV (protection unused: Entra's upload is plain)."""
    out = io.StringIO(newline="")
    w = SafeWriter(out, lineterminator="\r\n")
    w.writerow(HEADER)
    for r in records:
        w.writerow((r.upn, r.serial, r.base32(), r.period, r.manufacturer, r.model))
    return out.getvalue().encode("utf-8")
