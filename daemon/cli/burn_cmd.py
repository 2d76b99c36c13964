"""`tokenstation burn`, whatever the token: the verb and its whole decision.

A family that burns into profiles takes the burn when asked for one (``--profile``);
otherwise it is a single-profile burn (``token_cmds.burn``: through the running daemon
when there is one, else directly). Each family's code is its own module.
"""

from __future__ import annotations

import argparse

from tokenstation.daemon.cli import families
from tokenstation.daemon.cli.commands import summary
from tokenstation.daemon.cli.secret_input import add_source_args
from tokenstation.daemon.cli.token_cmds import burn, reader_args, settings_args


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register burn (with every family's own flags)."""
    p = sub.add_parser(
        "burn",
        help=summary("burn"),
        description="The secret comes from a file or standard input (--secret-file, "
        "--uri-file; `-` is standard input) or, on a terminal, is asked for without echo. "
        "--secret and --uri also work but leave it readable by other local users.",
    )
    reader_args(p)
    add_source_args(p)
    settings_args(p, required_note=False)
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    for family in families.others():
        family.add_burn_args(p)
    p.set_defaults(func=cmd_burn)


def cmd_burn(args: argparse.Namespace) -> int:
    """Program a seed: into a profile when a family that has them claims the burn (a
    Molto2: --profile N|next), else onto a single-profile token."""
    for family in families.others():
        if family.burn_claims(args):
            done: int = family.cmd_burn(args)
            return done
    return burn(args)
