"""`tokenstation sync`, whatever the token: the verb and its whole decision.

Which family, and directly or through the running daemon, is decided in
:func:`cmd_sync`; the family's own code does the rest (``token_cmds`` for a
single-profile token, the other families' modules through ``cli/families.py``), and
``sync_via_daemon`` asks the daemon.
"""

from __future__ import annotations

import argparse

from tokenstation.daemon.cli import families
from tokenstation.daemon.cli.commands import summary
from tokenstation.daemon.cli.common import as_path
from tokenstation.daemon.cli.held import daemon_presence
from tokenstation.daemon.cli.sync_via_daemon import DaemonAbsent, sync_via_daemon
from tokenstation.daemon.cli.token_cmds import (
    direct_instead,
    reader_args,
    settings_args,
    sync_direct,
)
from tokenstation.daemon.families.views import family_name
from tokenstation.daemon.token.errors import ReaderUnavailable
from tokenstation.daemon.token.session import ClockKind


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register sync."""
    p = sub.add_parser(
        "sync",
        help=summary("sync"),
        description="Through the running daemon when there is one (it knows the settings "
        "this station wrote); directly otherwise (saying so), with the settings given as flags.",
    )
    reader_args(p)
    p.add_argument("--serial", help="the token to sync (default: the only one present)")
    settings_args(p, required_note=True)
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--bus", choices=["session", "system"], default="session", help="daemon's bus")
    p.add_argument("--direct", action="store_true", help="talk to the reader, not the daemon")
    p.add_argument("--config", type=as_path, metavar="FILE", help=argparse.SUPPRESS)
    p.add_argument(
        "--clock-kind",
        choices=[k.value for k in ClockKind if k is not ClockKind.UNKNOWN],
        help="direct sync only: what an earlier sync reported of this token's clock "
        "(a phase-keeping clock is then set with one write)",
    )
    p.set_defaults(func=cmd_sync)


def cmd_sync(args: argparse.Namespace) -> int:
    """Set a token's clock to the host's, where that is safe. The decision, in order:

    1. A family that knows its device by the reader (a Molto2: by the reader's name, or
       behind vpcd when no single-profile settings were given) takes it: held by the
       running daemon, the daemon syncs it (--direct is refused: two sessions on one
       device break each other); else its own direct sync, unless its one probe says
       the device is not its own.
    2. Otherwise a single-profile token: through the running daemon (it knows the
       settings this station wrote) unless --direct; with no daemon, directly with the
       settings given as flags (saying so), refused without them.
    """
    reader = _reader(args)
    for family in families.others():
        if reader is None or not family.sync_claims(args, reader):
            continue
        held = daemon_presence(args, reader)
        if held is not None and family_name(held) != family.FAMILY:
            break  # the daemon holds another family's token there: the usual sync
        if held is not None:
            if args.direct:
                raise family.refuse_direct_sync(held)
            args.reader = args.reader or reader
            return sync_via_daemon(args)
        done: int | None = family.sync_direct(args, reader)
        if done is not None:
            return done
        break
    if not args.direct:
        try:
            return sync_via_daemon(args)
        except DaemonAbsent as exc:
            direct_instead(args, exc.message, exc.next_step)
    return sync_direct(args)


def _reader(args: argparse.Namespace) -> str | None:
    """The reader chosen (None: none to choose; the single-profile path says why)."""
    from tokenstation.daemon import pcsc

    try:
        return pcsc.choose_reader(args.reader)
    except ReaderUnavailable:
        return None
