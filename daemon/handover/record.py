"""The burned-token record every hand-over format is written from (the seed kept secret)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from tokenstation.daemon.token.secret import Secret

#: Every token the station burns so far is a Token2 one (daemon/token/models.py).
MANUFACTURER = "Token2"


def printed_serial(serial: str, profile: int | None) -> str:
    """The serial an identity server knows the token by.

    A single-profile token: the serial printed on its back. A Molto2 carries up to 100
    seeds under one printed serial, so each profile is a token of its own there:
    ``SERIAL-NN``, NN the profile number as ``tokenstation profiles`` shows it (00..99).
    """
    return serial if profile is None else f"{serial}-{profile:02d}"


@dataclass(frozen=True)
class BurnedToken:
    """One burned token as the identity server needs to know it."""

    serial: str  # as printed on the token (Molto2: printed_serial's SERIAL-NN)
    manufacturer: str
    model: str
    algorithm: str  # "sha1" | "sha256"
    digits: int
    period: int
    upn: str  # the user it is assigned to ("" when none)
    label: str  # issuer:account
    batch: str
    order: int  # burn order: entries are written in it
    seed: Secret = field(repr=False)

    def base32(self) -> str:
        """The seed in Base32 without padding (Entra's alphabet A-Z 2-7)."""
        return base64.b32encode(self.seed.reveal()).decode("ascii").rstrip("=")

    def hex(self) -> str:
        """The seed in hex."""
        return self.seed.reveal().hex()
