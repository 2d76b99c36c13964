"""The Molto2's section of the configuration: ``[molto2] customer_key`` (the key its
writes authenticate with; Token2's default unless set)."""

from __future__ import annotations

from typing import Any

from tokenstation.daemon.families.section import FamilySection, HasFamilySettings
from tokenstation.daemon.token.molto2 import DEFAULT_CUSTOMER_KEY, parse_customer_key


def _customer_key(v: Any) -> bytes:
    return parse_customer_key(v if isinstance(v, str) else "")


SECTION = FamilySection(
    "molto2",
    {"customer_key": _customer_key},
    {"customer_key": DEFAULT_CUSTOMER_KEY},
    secret_keys=frozenset({"customer_key"}),
)


def customer_key(cfg: HasFamilySettings) -> bytes:
    """The customer key the Molto2's writes authenticate with."""
    key: bytes = SECTION.value(cfg, "customer_key")
    return key
