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
    except Exception as exc:  # the last resort: one line, the traceback only at debug level
        import logging

        logging.getLogger("tokenstation").debug("unexpected error", exc_info=True)
        fail(
            f"unexpected error: {type(exc).__name__}",
            "Run it again with --log-level debug for details.",
            EXIT_FAILED,
            as_json,
        )


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
