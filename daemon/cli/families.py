"""The token families on the command line: each family's direct code is one module that
never imports another family's (``token_cmds``: the single-profile tokens; the others are
named in ``commands.FAMILY_MODULES``). The verbs (``sync_cmd``, ``burn_cmd``) hold the
decision and reach the families here, in the table's order, the single-profile one last.

A family module offers what the verbs ask of it: ``sync_claims(args, reader)``,
``sync_direct(args, reader)`` (None: not one of its devices after all),
``refuse_direct_sync(held)``, ``burn_claims(args)``, ``cmd_burn(args)``,
``add_burn_args(parser)`` and ``refuse_single_profile(reader)``; ``FAMILY``, its name in
the daemon's views.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from types import ModuleType

from tokenstation.daemon.cli.commands import FAMILY_MODULES


def others() -> Iterator[ModuleType]:
    """The families other than the single-profile one (known by their device), in order."""
    for module in FAMILY_MODULES:
        yield importlib.import_module(f"tokenstation.daemon.cli.{module}")


def refuse_other_families(reader: str) -> None:
    """Single-profile commands are never sent to another family's device (each knows its
    own by the reader's name, nothing sent)."""
    for family in others():
        family.refuse_single_profile(reader)
