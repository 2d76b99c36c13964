"""A token family's own section of the configuration (``[molto2]``, ...): its keys, how
each value is read, the defaults, and which keys hold secrets (for the warning about a
configuration others may read).

The configuration reads every family's section from :data:`sections.FAMILY_SECTIONS`
without knowing the families; a family reads its values back through its section
(:meth:`FamilySection.value`). A leaf module: it imports no family and no configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

#: A key's reader: the value as written in the file -> the value the family uses; a bad
#: value raises ``InvalidInput`` or ``ValueError`` with the sentence the user sees.
Reader = Callable[[Any], Any]

#: Every family's values as read, by section name then key (only keys the file set).
FamilySettings = Mapping[str, Mapping[str, Any]]


class HasFamilySettings(Protocol):
    """What holds the families' values (``config.Config``)."""

    @property
    def family_settings(self) -> FamilySettings:
        """The families' sections as read."""
        ...


@dataclass(frozen=True)
class FamilySection:
    """One family's ``[name]`` section."""

    name: str
    readers: Mapping[str, Reader]
    defaults: Mapping[str, Any]
    #: Keys whose value, set to anything but the default, is a secret.
    secret_keys: frozenset[str] = frozenset()

    def value(self, holder: HasFamilySettings, key: str) -> Any:
        """``key``'s value as configured, else its default."""
        return holder.family_settings.get(self.name, {}).get(key, self.defaults[key])

    def holds_secret(self, holder: HasFamilySettings) -> bool:
        """Whether the configuration sets a secret of this family."""
        values = holder.family_settings.get(self.name, {})
        return any(k in values and values[k] != self.defaults.get(k) for k in self.secret_keys)
