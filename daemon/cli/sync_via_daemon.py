"""`tokenstation sync` through the running daemon: it knows the settings it wrote."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from tokenstation.daemon.cli.common import EXIT_NO_READER, EXIT_USAGE, CliError, confirm, emit_json
from tokenstation.daemon.cli.daemon_link import DaemonAbsent, DaemonRefused, daemon_call

if TYPE_CHECKING:
    from tokenstation.daemon.bus.client import StationClient

__all__ = ["DaemonAbsent", "sync_via_daemon"]


def _options(args: argparse.Namespace) -> dict[str, Any]:
    given = {
        "algorithm": args.algorithm,
        "period": args.period,
        "display_timeout": args.display_timeout,
    }
    given = {k: v for k, v in given.items() if v is not None}
    if given and len(given) != 3:
        raise CliError(
            "give --algorithm, --period and --display-timeout together (a clock write rewrites "
            "all three), or none to use what the daemon knows",
            EXIT_USAGE,
            "Nothing was written.",
        )
    return given


def _pick(present: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    tokens = [
        p
        for p in present
        if "serial" in p
        and (not args.serial or p["serial"] == args.serial)
        and (not args.reader or p["reader"] == args.reader)
    ]
    if len(tokens) == 1:
        return tokens[0]
    if not tokens:
        what = f"token {args.serial}" if args.serial else "token"
        raise CliError(
            f"no {what} on the daemon's readers",
            EXIT_NO_READER,
            "Switch the token on and lay it flat on the reader, then run it again.",
        )
    serials = ", ".join(p["serial"] for p in tokens)
    raise CliError(
        f"several tokens are present ({serials})",
        EXIT_USAGE,
        "Choose one with --serial; nothing was written.",
    )


def sync_via_daemon(args: argparse.Namespace) -> int:
    """Ask the daemon to sync; raises DaemonAbsent when there is none."""

    async def look(client: StationClient) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        return await client.present(), await client.status()

    present, status = daemon_call(args.bus, look, fallback=True)
    options = _options(args)
    token = _pick(present, args)
    serial = token["serial"]
    if token.get("sync_safe") or options:
        question = (
            f"Set the clock of {token['model']} token {serial} "
            f"({token.get('drift_words', 'drift not measured yet')})?"
        )
        if token.get("needs_confirmation") or not status["host_clock"].get("trusted"):
            reason = status["host_clock"].get("reason", "unknown")
            question = f"The host clock is not trusted ({reason}). {question[:-1]} from it anyway?"
            options["confirm_untrusted_clock"] = True
        confirm(question, args.yes)
    try:
        result = daemon_call(args.bus, lambda c: c.sync(serial, reader=token["reader"], **options))
    except DaemonRefused as exc:
        raise DaemonRefused(exc.kind, f"token {serial}: {exc}", exc.next_step) from None
    if args.json:
        emit_json({"ok": True, "via": "daemon", **result})
        return 0
    if "synced" in result:  # a Molto2: its seeded profiles, time only
        from tokenstation.daemon.token.molto2_session import molto2_drift_words as words

        before = result.get("drift_before_words") or words(
            result.get("drift_before_s"), precision=False
        )
        after = result.get("drift_after_words") or words(result.get("drift_after_s"))
        print(
            f"Set the clock of {result['synced']} profiles of {result['model']} {serial} on "
            f"{result['reader']} (through the daemon): the largest drift was {before}; now "
            f"{after}."
        )
        return 0
    after = result.get("drift_after_words")
    print(
        f"Set the clock of {result['model']} token {serial} on {result['reader']} (through the "
        f"daemon): it was {result['drift_before_words']}"
        + (f"; now {after} (±{result['drift_after_uncertainty_s']:.3f} s)." if after else ".")
    )
    if "clock_kind" in result:
        from tokenstation.daemon.cli.token_cmds import clock_kind_words

        kind, writes = str(result["clock_kind"]), int(result["clock_writes"])
        print(clock_kind_words(kind, writes, "The daemon remembers it: next time, one write."))
    return 0
