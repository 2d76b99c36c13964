"""Running a parsed command: logging, then every failure as one line and an exit code."""

from __future__ import annotations

import sys

from tokenstation.daemon.cli.common import EXIT_FAILED, EXIT_INTERRUPTED, CliError, fail

TYPE_CHECKING = False  # True for type checkers; saves importing typing (and argparse)
if TYPE_CHECKING:
    import argparse


def run(parser: argparse.ArgumentParser | None, args: argparse.Namespace) -> int:
    """Set up logging, run ``args.func``; failures become one line on stderr and a code.

    ``parser`` words a bad --log-level; None when the words were read without it (they
    hold no --log-level then).
    """
    from tokenstation.daemon.cli.common import ensure_logging, exit_code_for, logging_level
    from tokenstation.daemon.hardening import private_files
    from tokenstation.daemon.token.errors import TokenError

    private_files()  # what any command creates is private, whatever folder it lands in
    as_json = bool(getattr(args, "json", False))
    level = args.log_level or getattr(args, "default_log_level", "warning")
    try:
        logging_level(level)
    except ValueError as exc:
        if parser is None:
            raise
        parser.error(str(exc))
    if args.log_level or not getattr(args, "lazy_logging", False):
        ensure_logging()
    try:
        return int(args.func(args))
    except CliError as exc:
        fail(str(exc), exc.next_step, exc.code, as_json, exc.details)
    except TokenError as exc:
        fail(exc.message, exc.next_step, exit_code_for(exc), as_json)
    except KeyboardInterrupt:
        fail("interrupted", "", EXIT_INTERRUPTED, as_json)
    except BrokenPipeError:
        return 0
    except OSError as exc:  # a folder or file the command was pointed at
        from tokenstation.daemon.cli.common import EXIT_USAGE
        from tokenstation.daemon.xdg import SharedFolder

        _debug_trace()
        if isinstance(exc, SharedFolder):
            fail(str(exc), "", EXIT_USAGE, as_json)
        where = f"{exc.filename}: " if exc.filename else ""
        what = (exc.strerror or "the operating system refused it").lower()
        fail(
            f"{where}{what}",
            "Check that the path exists and that this user may use it, then run it again.",
            EXIT_FAILED,
            as_json,
        )
    except Exception:  # the last resort: one sentence, the traceback only at debug level
        _debug_trace()
        command = getattr(args, "command", "") or ""
        fail(
            f"`tokenstation {command}` stopped on an error it did not expect",
            "Run it again with --log-level debug to see where, and report it.",
            EXIT_FAILED,
            as_json,
        )


def _debug_trace() -> None:
    """The traceback of the error being handled, at debug level only."""
    import logging

    logging.getLogger("tokenstation").debug("the error, in full", exc_info=True)


def quick_exit(code: int) -> None:
    """End the process with ``code`` now that the output is out, without the teardown.

    Freeing every module and object at exit costs a `tokenstation scan` about 12 ms (Pillow
    and zxing-cpp loaded), as much as reading its image. Only for a command that leaves
    nothing to finish: no threads, no child processes, no atexit work of its own (logging
    writes each line to stderr as it goes). When stdout or stderr cannot be flushed this
    returns, and the normal exit reports it as it would.
    """
    import os

    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return
    os._exit(code)
