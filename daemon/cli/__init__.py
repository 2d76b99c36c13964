"""The `tokenstation` command.

Start-up is kept cheap: the parser for `--help` is built from the command table alone,
and only the module of the command being run is imported (with what it needs).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

from .. import __version__
from .commands import COMMANDS

#: Top-level options that take a value (so the value is not mistaken for the command).
_VALUED = ("--log-level",)


def command_in(argv: list[str]) -> str | None:
    """The command named in ``argv`` (the first word that is not a top-level option)."""
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word in _VALUED:
            skip = True
        elif not word.startswith("-"):
            return word
    return None


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{COMMANDS[name][0]}")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; only ``command``'s module is imported (all with "*")."""
    parser = argparse.ArgumentParser(
        prog="tokenstation",
        description="Burn, check and re-sync NFC-programmable TOTP hardware tokens.",
        epilog="Exit codes: 0 done; 1 failed or refused by the token; 2 bad input; "
        "3 no pcscd, reader or token (or no D-Bus or daemon, for commands that need one); "
        "4 refused by tokenstation for safety. `tokenstation COMMAND --help` for a command.",
    )
    parser.add_argument("--version", action="version", version=f"tokenstation {__version__}")
    parser.add_argument(
        "--log-level",
        default=None,
        help="traffic (APDUs), debug, info, warning or error (default warning; info for daemon)",
    )
    # prog given: argparse would otherwise load its help formatter (and shutil) to work it out
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", prog="tokenstation"
    )
    wanted = "*" if command == "*" else COMMANDS[command][0] if command in COMMANDS else None
    loaded: set[str] = set()
    for name, (module, text) in COMMANDS.items():
        if wanted not in (module, "*"):
            sub.add_parser(name, help=text, add_help=False)  # listed in --help only
        elif module not in loaded:
            loaded.add(module)
            mod = _module(name)
            register = getattr(mod, "add_parsers", None) or mod.add_parser
            register(sub)
    registered = {n for n, (m, _t) in COMMANDS.items() if m in loaded}
    for name, command_parser in sub.choices.items():  # accepted after the command name too
        if name in registered:
            command_parser.add_argument(
                "--log-level", default=argparse.SUPPRESS, help=argparse.SUPPRESS
            )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, run, and turn every failure into one line and an exit code."""
    argv = sys.argv[1:] if argv is None else argv
    command = command_in(argv)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    from .run import run

    return run(parser, args)


if __name__ == "__main__":
    sys.exit(main())
