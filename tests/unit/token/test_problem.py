"""The one problem type: every error a user can meet has a kind, and the kind alone picks
the exit code and the D-Bus error name, each from one table."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import tokenstation.daemon
from tokenstation.daemon.bus.names import ERROR_PREFIX, ERRORS, KINDS, error_name
from tokenstation.daemon.cards import StationError
from tokenstation.daemon.cli.common import CODE_FOR_KIND, CliError, exit_code_for
from tokenstation.daemon.cli.daemon_link import DaemonAbsent, DaemonRefused
from tokenstation.daemon.config import ConfigError
from tokenstation.daemon.credentials import CredentialProblem
from tokenstation.daemon.events import ErrorKind
from tokenstation.daemon.storage.database import StoreUnavailable
from tokenstation.daemon.token.errors import (
    CardLost,
    InvalidInput,
    ReaderUnavailable,
    RefusedByPolicy,
)
from tokenstation.daemon.token.problem import Problem, ProblemKind
from tokenstation.daemon.xdg import SharedFolder


def _all_problems() -> list[type[Problem]]:
    for mod in pkgutil.walk_packages(tokenstation.daemon.__path__, "tokenstation.daemon."):
        if ".simulator." in mod.name or mod.name.endswith(("__main__", "reference")):
            continue
        try:
            importlib.import_module(mod.name)
        except ImportError:  # an optional library (the tray's) not here
            continue
    out, todo = [], [Problem]
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo += cls.__subclasses__()
    return out


def test_every_problem_has_a_kind_with_an_exit_code() -> None:
    problems = _all_problems()
    assert len(problems) > 30  # the token layer's, the station's, the CLI's, the store's ...
    for cls in problems:
        assert isinstance(cls.kind, ProblemKind), cls
        assert cls.kind in CODE_FOR_KIND, cls


def test_the_tables_cover_every_kind_and_the_wire_kinds_are_the_same() -> None:
    assert set(CODE_FOR_KIND) == set(ProblemKind)
    assert set(ERRORS) == set(ProblemKind) - {ProblemKind.DENIED}  # the bus's own name
    assert ErrorKind is ProblemKind
    assert KINDS["Failed"] is ProblemKind.FAILED  # what a client reads back


@pytest.mark.parametrize(
    ("error", "code", "dbus"),
    [
        (InvalidInput("a 4-byte seed"), 2, "InvalidArgs"),
        (RefusedByPolicy("a clock write erases this seed"), 4, "Refused"),
        (ReaderUnavailable("no reader"), 3, "NotPresent"),
        (CardLost("the card left"), 1, "Failed"),
        (StationError(ErrorKind.BUSY, "the reader is busy"), 1, "Busy"),
        (StationError(ErrorKind.NEEDS_CONFIRMATION, "the host clock is not trusted"), 4, None),
        (ConfigError("[drift] threshold: must be a number"), 2, "InvalidArgs"),
        (StoreUnavailable("the shared database cannot be reached"), 3, "Failed"),
        (DaemonAbsent("no daemon", "start it"), 3, "Failed"),
        (CredentialProblem("the key file is 0644"), 1, "Failed"),
        (SharedFolder("/tmp is shared"), 2, "InvalidArgs"),
    ],
)
def test_a_problem_of_each_kind_reaches_its_documented_exit_code_and_dbus_name(
    error: Problem, code: int, dbus: str | None
) -> None:
    assert exit_code_for(error) == code
    assert error_name(error.kind) == ERROR_PREFIX + (dbus or ERRORS[error.kind])


def test_the_cli_and_the_daemons_answers_take_their_code_from_the_kind() -> None:
    assert CliError("bad", kind=ProblemKind.INVALID).code == 2
    assert CliError("refused", 4).kind is ProblemKind.REFUSED  # a code named by number
    assert CliError("failed").code == 1 and CliError("failed").kind is ProblemKind.FAILED
    refused = DaemonRefused("not-present", "token 1 is not on a reader")
    assert (refused.code, refused.kind) == (3, ProblemKind.NOT_PRESENT)
    assert DaemonRefused("something-new", "odd").code == 1
    assert str(StationError(ErrorKind.REFUSED, "no", "Do this.")) == "no"  # as users see it


def _code_picked_for_a_caught_problem(source: str, problems: set[str]) -> list[int]:
    """Lines where a command, having caught a Problem, words a CliError with an exit code
    of its own choosing instead of ``CliError.of`` (which keeps the problem's kind)."""
    import ast

    lines = []
    for handler in ast.walk(ast.parse(source)):
        if not isinstance(handler, ast.ExceptHandler) or handler.type is None:
            continue
        caught = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        names = {ast.unparse(c).rpartition(".")[2] for c in caught}
        if not names <= problems:  # an OSError beside a Problem: the command picks
            continue
        for node in ast.walk(handler):
            if (
                isinstance(node, ast.Call)
                and ast.unparse(node.func) == "CliError"
                and (len(node.args) > 1 or any(k.arg == "code" for k in node.keywords))
            ):
                lines.append(node.lineno)
    return lines


def test_a_caught_problem_keeps_its_exit_code_in_every_command() -> None:
    from pathlib import Path

    problems = {cls.__name__ for cls in _all_problems()}
    cli = Path(tokenstation.daemon.__file__).parent / "cli"
    picked = {
        path.name: found
        for path in sorted(cli.glob("*.py"))
        if (found := _code_picked_for_a_caught_problem(path.read_text(), problems))
    }
    assert picked == {}
    # The check sees a case as it was before CliError.of.
    old = "try:\n    f()\nexcept SchemaMismatch as exc:\n    raise CliError(str(exc), 1, '')\n"
    assert _code_picked_for_a_caught_problem(old, problems) == [4]
