"""The token families, listed once, and the card examination that tries them in order.

A card is asked the least that tells: a family known by its reader's name is read at
once (nothing sent to find out); otherwise one GET INFO, and a serial that no model
matches lets a family probe where that is safe (vpcd only, one public read). The
single-profile family is the rest.
"""

from __future__ import annotations

from collections.abc import Mapping

from tokenstation.daemon.config import Config
from tokenstation.daemon.families.base import Announce, CardAtHand, Family, Reading
from tokenstation.daemon.families.molto2 import MOLTO2
from tokenstation.daemon.families.single import SINGLE
from tokenstation.daemon.token.models import ModelTable
from tokenstation.daemon.token.session import Connection, HostClock, TokenSession

#: Every family tokenstation knows, the one-seed tokens last (they are what is left).
FAMILIES: tuple[Family, ...] = (MOLTO2, SINGLE)


def family_of(thing: object) -> Family:
    """The family of a Presence, a Reading, a presence's wire view or a family name
    (anything unnamed is a single-profile token's)."""
    named: object = getattr(thing, "family", None)  # a Presence's or a Reading's own
    if isinstance(thing, Mapping):
        named = thing.get("family")
    elif isinstance(thing, str):
        named = thing
    for f in FAMILIES:
        if named is f or named == f.name:
            return f
    for f in FAMILIES:
        if f.recognise(thing):
            return f
    return SINGLE


def examine(
    reader: str,
    conn: Connection,
    clock: HostClock,
    *,
    cfg: Config,
    models: ModelTable,
    announce: Announce,
) -> Reading:
    """What the card on ``reader`` is, read once per placement (never in a loop)."""
    for family in FAMILIES:
        if family.by_reader(reader):
            return family.examine(CardAtHand(conn, clock, cfg, models, None, announce))
    first = TokenSession(conn, models, clock).read_first()
    card = CardAtHand(conn, clock, cfg, models, first, announce)
    if not models.lookup(first.info.serial).prefix:
        for family in FAMILIES:
            if family.probe(reader, conn):
                return family.examine(card)
    return SINGLE.examine(card)
