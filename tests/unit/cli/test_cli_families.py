"""The command line's families: each module the verbs reach offers what they ask of it,
and the verbs' own modules hold the decision (no family module imports another's)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from tokenstation.daemon.cli.commands import COMMANDS, FAMILY_MODULES

ASKED = (
    "FAMILY",
    "sync_claims",
    "sync_direct",
    "refuse_direct_sync",
    "burn_claims",
    "cmd_burn",
    "add_burn_args",
    "refuse_single_profile",
)
CLI = Path(__file__).resolve().parents[3] / "daemon" / "cli"


@pytest.mark.parametrize("module", FAMILY_MODULES)
def test_every_family_module_offers_what_the_verbs_ask(module: str) -> None:
    mod = importlib.import_module(f"tokenstation.daemon.cli.{module}")
    assert [name for name in ASKED if not hasattr(mod, name)] == []


def test_sync_and_burn_are_verbs_and_no_family_module_imports_another() -> None:
    assert (COMMANDS["sync"][0], COMMANDS["burn"][0]) == ("sync_cmd", "burn_cmd")
    family_modules = {*FAMILY_MODULES, "token_cmds"}
    for module in family_modules:
        tree = ast.parse((CLI / f"{module}.py").read_text())
        imported = {
            (node.module or "").rpartition(".")[2]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
        } | {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module == "tokenstation.daemon.cli"
            for alias in node.names
        }
        others = family_modules - {module}
        assert imported & (others | {"sync_cmd", "burn_cmd"}) == set(), module
