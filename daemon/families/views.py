"""What a presence's wire view says of its token's family (light: the command line reads
the daemon's views without loading the families)."""

from __future__ import annotations

from collections.abc import Mapping

#: The single-profile family's name (``families/single.py``): what is left.
SINGLE = "single"


def family_name(view: Mapping[str, object]) -> str:
    """The family a presence's view names (``PresenceView.family``)."""
    return str(view.get("family") or SINGLE)
