"""The `tokenstation` command."""

from __future__ import annotations

import argparse
import logging
import sys

from .. import __version__
from .. import log as logsetup
from ..token.errors import TokenError
from . import (
    daemon_cmds,
    demo,
    install_cmds,
    molto2_cmds,
    queue_cmds,
    scan,
    simulate,
    token_cmds,
    tray_cmd,
)
from .common import CliError, exit_code_for, fail


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="tokenstation",
        description="Burn, check and re-sync NFC-programmable TOTP hardware tokens.",
    )
    parser.add_argument("--version", action="version", version=f"tokenstation {__version__}")
    parser.add_argument(
        "--log-level",
        default=None,
        help="traffic (APDUs), debug, info, warning or error (default warning; info for daemon)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    token_cmds.add_parsers(sub)
    molto2_cmds.add_parsers(sub)
    daemon_cmds.add_parsers(sub)
    scan.add_parser(sub)
    queue_cmds.add_parser(sub)
    tray_cmd.add_parser(sub)
    install_cmds.add_parsers(sub)
    simulate.add_parser(sub)
    demo.add_parser(sub)
    for command in sub.choices.values():  # accepted after the command name too
        command.add_argument("--log-level", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, run, and turn every failure into one line and an exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    as_json = bool(getattr(args, "json", False))
    try:
        level = args.log_level or getattr(args, "default_log_level", "warning")
        logsetup.setup(logsetup.parse_level(level))
    except ValueError as exc:
        parser.error(str(exc))
    try:
        return int(args.func(args))
    except CliError as exc:
        fail(str(exc), exc.next_step, exc.code, as_json)
    except TokenError as exc:
        fail(exc.message, exc.next_step, exit_code_for(exc), as_json)
    except KeyboardInterrupt:
        fail("interrupted", "", 130, as_json)
    except BrokenPipeError:
        return 0
    except Exception as exc:  # the last resort: one line, the traceback only at debug level
        logging.getLogger("tokenstation").debug("unexpected error", exc_info=True)
        fail(
            f"unexpected error: {type(exc).__name__}",
            "Run with --log-level debug for details.",
            1,
            as_json,
        )


if __name__ == "__main__":
    sys.exit(main())
