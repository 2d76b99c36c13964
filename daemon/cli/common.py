"""What every command shares: output as text or JSON, confirmation, error-to-exit mapping."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any, NoReturn

from ..token.errors import InvalidInput, ReaderUnavailable, RefusedByPolicy, TokenError

EXIT_OK = 0
EXIT_FAILED = 1  # the operation failed or the token refused it
EXIT_USAGE = 2  # bad arguments or input (argparse uses 2 as well)
EXIT_NO_READER = 3  # no pcscd, no reader, no token
EXIT_REFUSED = 4  # tokenstation refused on safety grounds; the token was not written


class CliError(Exception):
    """A failure with one line for stderr and an exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED, next_step: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.next_step = next_step


def exit_code_for(exc: TokenError) -> int:
    """The exit code for a token-layer error."""
    if isinstance(exc, InvalidInput):
        return EXIT_USAGE
    if isinstance(exc, RefusedByPolicy):
        return EXIT_REFUSED
    if isinstance(exc, ReaderUnavailable):
        return EXIT_NO_READER
    return EXIT_FAILED


def emit_json(payload: dict[str, Any]) -> None:
    """One JSON document on stdout."""
    json.dump(payload, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    sys.stdout.flush()


def fail(message: str, next_step: str, code: int, as_json: bool) -> NoReturn:
    """Report a failure (one line on stderr; JSON on stdout too with --json) and exit."""
    line = message.rstrip(".") + "."
    if next_step:
        line += " " + next_step
    if as_json:
        emit_json({"ok": False, "error": message, "next_step": next_step, "exit_code": code})
    print(f"tokenstation: {line}", file=sys.stderr)
    raise SystemExit(code)


def confirm(question: str, assume_yes: bool) -> None:
    """Ask on a terminal; without one, refuse unless --yes was given."""
    if assume_yes:
        return
    if not sys.stdin.isatty():
        raise CliError(
            f"{question.rstrip('?')}: needs confirmation",
            EXIT_REFUSED,
            "Run it again with --yes to confirm; nothing was written.",
        )
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise CliError("cancelled", EXIT_REFUSED, "Nothing was written.")


def utc(ts: float, decimals: int = 0) -> str:
    """'2026-11-27 21:40:03 UTC' (with tenths when decimals=1)."""
    dt = datetime.fromtimestamp(ts, UTC)
    text = dt.strftime("%Y-%m-%d %H:%M:%S")
    if decimals:
        text += f".{int((ts % 1) * 10**decimals):0{decimals}d}"
    return text + " UTC"
