"""The `tokenstation` command.

Start-up is kept cheap: the parser for `--help` is built from the command table alone,
and only the module of the command being run is imported (with what it needs).
"""

from __future__ import annotations

import importlib
import sys

from tokenstation.daemon import __version__
from tokenstation.daemon.cli.commands import COMMANDS, QUICK

TYPE_CHECKING = False  # True for type checkers; saves importing typing at start-up
if TYPE_CHECKING:
    import argparse

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


_DESCRIPTION = "Burn, check and re-sync NFC-programmable TOTP hardware tokens."
_EPILOG = (
    "Exit codes: 0 done; 1 failed or refused by the token; 2 bad input; 3 no pcscd, reader "
    "or token (for commands that go through the daemon: no D-Bus bus or no daemon); 4 refused "
    "by tokenstation for safety; 130 interrupted. `tokenstation COMMAND --help` for a command."
)


def _listing(width: int = 79) -> str:
    """The commands and their summaries, laid out as argparse lays out subcommands."""
    import textwrap

    lines = ["commands:"]
    for name, (_module, text) in COMMANDS.items():
        head = f"  {name:<22}"
        if len(name) > 20:
            lines.append(f"  {name}")
            head = " " * 24
        body = textwrap.wrap(text, width - 24)
        lines.append(head + body[0])
        lines += [" " * 24 + more for more in body[1:]]
    return "\n".join(lines)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser. With a known ``command`` only its module is imported and only
    its commands are registered ("*": all of them); with none, the parser lists the
    commands from the table (for --help and errors) without importing any."""
    import argparse

    from tokenstation.daemon.cli.parsers import Parser, RawFormatter

    known = command == "*" or command in COMMANDS
    if known:
        parser: argparse.ArgumentParser = Parser(
            prog="tokenstation", description=_DESCRIPTION, epilog=_EPILOG
        )
    else:
        import textwrap

        parser = Parser(
            prog="tokenstation",
            description=f"{_DESCRIPTION}\n\n{_listing()}",
            epilog=textwrap.fill(_EPILOG, 79),
            formatter_class=RawFormatter,
        )
    parser.add_argument("--version", action="version", version=f"tokenstation {__version__}")
    parser.add_argument(
        "--log-level",
        default=None,
        help="traffic (APDUs), debug, info, warning or error (default warning; info for daemon)",
    )
    if not known:
        parser.add_argument(
            "command", metavar="COMMAND", choices=list(COMMANDS), help="one of the commands above"
        )
        return parser
    # prog given: argparse would otherwise load its help formatter to work it out
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", prog="tokenstation"
    )
    modules = list(dict.fromkeys(m for m, _t in COMMANDS.values()))
    for module in modules if command == "*" else [COMMANDS[str(command)][0]]:
        mod = importlib.import_module(f"{__name__}.{module}")
        register = getattr(mod, "add_parsers", None) or mod.add_parser
        register(sub)
    for command_parser in sub.choices.values():  # accepted after the command name too
        command_parser.add_argument(
            "--log-level", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    return parser


def main(argv: list[str] | None = None, *, quick_exit: bool = False) -> int:
    """Entry point: parse, run, and turn every failure into one line and an exit code.

    With ``quick_exit``, a command that allows it (``scan``) ends the process as soon as
    its output is out, skipping the interpreter's teardown (see :func:`run.quick_exit`).
    """
    argv = sys.argv[1:] if argv is None else argv
    command = command_in(argv)
    args = None
    parser = None
    if command in QUICK:  # its plainest form, read without argparse
        args = importlib.import_module(f"{__name__}.{QUICK[command]}").quick_args(argv)
    if args is None:
        parser = build_parser(command if command in COMMANDS else None)
        args = parser.parse_args(argv)
    from tokenstation.daemon.cli import run

    code = run.run(parser, args)
    if quick_exit and getattr(args, "quick_exit", False):
        run.quick_exit(code)
    return code


def program() -> int:
    """The `tokenstation` program (its console script, `python -m tokenstation.daemon`)."""
    return main(quick_exit=True)


if __name__ == "__main__":
    sys.exit(program())
