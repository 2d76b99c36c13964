"""What every command shares: output as text or JSON, confirmation, error-to-exit mapping.

The exit codes are documented in README.md ("Exit codes"); tests/integration/
test_cli_states.py reads that table and checks every command against it.
"""

from __future__ import annotations

import sys

from tokenstation.daemon.token.problem import Problem, ProblemKind
from tokenstation.daemon.token.sentences import join_sentences

TYPE_CHECKING = False  # True for type checkers; saves importing typing at start-up
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, NoReturn

    from tokenstation.daemon.config import Config

EXIT_OK = 0
EXIT_FAILED = 1  # the operation failed or the token refused it
EXIT_USAGE = 2  # bad arguments or input, unknown ids (argparse uses 2 as well)
EXIT_NO_READER = 3  # no pcscd, reader or token; for daemon commands: no D-Bus or no daemon
EXIT_UNAVAILABLE = EXIT_NO_READER
EXIT_REFUSED = 4  # tokenstation refused on safety grounds; the token was not written
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)


_log_level: list[str] = ["warning"]
_logging_ready: list[bool] = [False]


def logging_level(name: str) -> None:
    """Check and remember the log level; logging itself is set up by ensure_logging."""
    if name.strip().lower() not in ("traffic", "debug", "info", "warning", "error"):
        from tokenstation.daemon import log as logsetup

        logsetup.parse_level(name)  # raises ValueError with the accepted names
    _log_level[0] = name


def ensure_logging() -> None:
    """Set up logging once. Commands marked lazy_logging call it only when they go on to
    load what logs (the D-Bus client, the registry), so their quick answers stay quick."""
    if _logging_ready[0]:
        return
    from tokenstation.daemon import log as logsetup

    logsetup.setup(logsetup.parse_level(_log_level[0]))
    _logging_ready[0] = True


#: The one table of exit codes: a problem's kind -> the code the command exits with
#: (docs/cli.md, "Exit codes").
CODE_FOR_KIND: dict[ProblemKind, int] = {
    ProblemKind.INVALID: EXIT_USAGE,
    ProblemKind.REFUSED: EXIT_REFUSED,
    ProblemKind.NEEDS_CONFIRMATION: EXIT_REFUSED,
    ProblemKind.DENIED: EXIT_REFUSED,  # the bus policy (a station's tokenstation group)
    ProblemKind.NOT_PRESENT: EXIT_NO_READER,
    ProblemKind.UNAVAILABLE: EXIT_UNAVAILABLE,
    ProblemKind.BUSY: EXIT_FAILED,
    ProblemKind.FAILED: EXIT_FAILED,
}
#: A code some command still names by number -> its kind (the first kind of that code).
_KIND_FOR_CODE = {code: kind for kind, code in reversed(CODE_FOR_KIND.items())}


class CliError(Problem):
    """A failure with one line for stderr, the next step and an exit code.

    The code is the kind's (:data:`CODE_FOR_KIND`); a caller may still name the code
    instead, and the kind is then that code's. ``details`` are extra fields for the
    --json document (never a secret).
    """

    def __init__(
        self,
        message: str,
        code: int | None = None,
        next_step: str = "",
        details: dict[str, Any] | None = None,
        *,
        kind: ProblemKind | None = None,
    ) -> None:
        if kind is None:
            kind = _KIND_FOR_CODE.get(code, ProblemKind.FAILED) if code is not None else None
        super().__init__(message, next_step, kind=kind)
        self.code = CODE_FOR_KIND[self.kind] if code is None else code
        self.details = details or {}

    @classmethod
    def of(
        cls,
        problem: Problem,
        next_step: str | None = None,
        *,
        message: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> CliError:
        """The command's failure for a problem met on the way: its kind (and so its exit
        code) kept, its line and next step unless the command words them for its case."""
        return cls(
            str(problem) if message is None else message,
            None,
            problem.next_step if next_step is None else next_step,
            details,
            kind=problem.kind,
        )


def exit_code_for(exc: Problem) -> int:
    """The exit code for a problem (a token-layer error, a station's, a store's ...)."""
    return CODE_FOR_KIND[exc.kind]


def emit_json(payload: dict[str, Any]) -> None:
    """One JSON document on stdout (a rounded "-0.0" shown as 0.0)."""
    import json

    json.dump(_no_negative_zero(payload), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    sys.stdout.flush()


def _no_negative_zero(value: Any) -> Any:
    if type(value) is float:
        return value + 0.0
    if isinstance(value, dict):
        return {k: _no_negative_zero(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_no_negative_zero(v) for v in value]
    return value


def warn(text: str) -> None:
    """A warning line on stderr (the command goes on)."""
    print(f"tokenstation: warning: {text}", file=sys.stderr, flush=True)


def note(text: str) -> None:
    """A line on stderr about how the command went about it (not an error)."""
    print(f"tokenstation: {text}", file=sys.stderr, flush=True)


def fail(
    message: str,
    next_step: str,
    code: int,
    as_json: bool,
    details: dict[str, Any] | None = None,
) -> NoReturn:
    """Report a failure (one line on stderr; JSON on stdout too with --json) and exit."""
    line = join_sentences(message, next_step)
    if as_json:
        emit_json(
            {
                **(details or {}),
                "ok": False,
                "error": message,
                "next_step": next_step,
                "exit_code": code,
            }
        )
    print(f"tokenstation: {line}", file=sys.stderr)
    raise SystemExit(code)


def confirm(question: str, assume_yes: bool) -> None:
    """Ask on a terminal; without one, refuse unless --yes was given."""
    if assume_yes:
        return
    if not sys.stdin.isatty():
        raise CliError(
            f"not confirmed: {question.rstrip('?')}",
            EXIT_REFUSED,
            "There is no terminal to ask on: run it again with --yes to confirm. "
            "Nothing was written.",
        )
    try:
        answer = input(f"{question} [y/N] ").strip().lower()
    except EOFError:
        answer = ""
    if answer not in ("y", "yes"):
        raise CliError("cancelled", EXIT_REFUSED, "Nothing was written.")


def rough_drift_words(drift_s: float) -> str:
    """A first, whole-second reading in words: 'about 37 s fast (first read, ±1 s)'."""
    whole = round(drift_s)
    if whole == 0:
        return "within a second (first read)"
    return f"about {abs(whole)} s {'fast' if whole > 0 else 'slow'} (first read, ±1 s)"


def utc(ts: float, decimals: int = 0) -> str:
    """'2026-11-27 21:40:03 UTC' (with tenths when decimals=1)."""
    from datetime import UTC, datetime

    dt = datetime.fromtimestamp(ts, UTC)
    text = dt.strftime("%Y-%m-%d %H:%M:%S")
    if decimals:
        text += f".{int((ts % 1) * 10**decimals):0{decimals}d}"
    return text + " UTC"


def as_path(text: str) -> Path:
    """argparse ``type=`` for file names (pathlib is imported only when one is given)."""
    from pathlib import Path

    return Path(text)


def load_config(path: Path | None) -> Config:
    """The config file (XDG default when None), errors as usage errors."""
    from tokenstation.daemon.config import ConfigError, load

    if path is not None and not path.exists():
        raise CliError(
            f"no configuration file at {path}",
            EXIT_USAGE,
            "Check the path given to --config (without it the default "
            "~/.config/tokenstation/config.toml is read, if there is one).",
        )
    try:
        return load(path, required=path is not None)
    except ConfigError as exc:
        where = path or "the configuration file"
        raise CliError.of(
            exc, f"Fix {where} and run the command again.", message=f"configuration: {exc}"
        ) from None


def os_words(exc: OSError) -> str:
    """What the operating system said, in words (never the exception's class name)."""
    if isinstance(exc, IsADirectoryError):
        return "it is a folder, not a file"
    return (exc.strerror or "the system refused it").lower()
