"""Every family's section of the configuration, listed once (as ``table.FAMILIES`` lists
the families): the configuration reads these without importing the families."""

from __future__ import annotations

from tokenstation.daemon.families import molto2_settings
from tokenstation.daemon.families.section import FamilySection

FAMILY_SECTIONS: tuple[FamilySection, ...] = (molto2_settings.SECTION,)
