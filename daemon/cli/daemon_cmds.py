"""`tokenstation daemon`: the resident service."""

from __future__ import annotations

import argparse
from pathlib import Path

from tokenstation.daemon.cli.commands import summary
from tokenstation.daemon.cli.common import (
    EXIT_UNAVAILABLE,
    CliError,
    load_config,
)
from tokenstation.daemon.config import CLOCK_TRUST


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register daemon."""
    p = sub.add_parser(
        "daemon",
        help=summary("daemon"),
        description="Watch every reader, check each token placed on one, offer clock syncs "
        "over D-Bus. Runs until SIGTERM.",
    )
    p.add_argument("--config", type=Path, metavar="FILE", help="TOML file (default: XDG path)")
    p.add_argument("--bus", choices=["session", "system"], help="bus to serve on")
    p.add_argument("--threshold", type=float, metavar="SECONDS", help="drift threshold")
    auto = p.add_mutually_exclusive_group()
    auto.add_argument(
        "--auto-sync",
        dest="auto_sync",
        action="store_true",
        default=None,
        help="sync safe tokens by themselves (unattended stations)",
    )
    auto.add_argument("--no-auto-sync", dest="auto_sync", action="store_false")
    p.add_argument("--clock-trust", choices=CLOCK_TRUST, help="how to judge the host clock")
    p.add_argument("--state-dir", type=Path, metavar="DIR", help="where the registry lives")
    p.add_argument(
        "--store",
        metavar="URL",
        help="a PostgreSQL database shared with other stations (postgresql://...; "
        "default: [store] url, or this station's own SQLite files)",
    )
    p.set_defaults(func=cmd_daemon, default_log_level="info")


def cmd_daemon(args: argparse.Namespace) -> int:
    """Run the service until SIGTERM."""
    import asyncio

    from tokenstation.daemon.config import ConfigError
    from tokenstation.daemon.service import AlreadyRunning, BusUnavailable, StoreRefused, serve

    cfg = load_config(args.config)
    try:
        cfg = cfg.with_flags(
            bus=args.bus,
            drift_threshold_s=args.threshold,
            auto_sync=args.auto_sync,
            clock_trust=args.clock_trust,
            state_dir=args.state_dir,
            store_url=args.store,
        )
    except ConfigError as exc:
        raise CliError.of(exc, "Correct the flag and start it again.") from None
    from tokenstation.daemon.bus import address as busaddress

    if busaddress.missing(cfg.bus):
        raise CliError(
            f"{busaddress.unreachable(cfg.bus)}, so the daemon has nowhere to serve",
            EXIT_UNAVAILABLE,
            busaddress.reach_advice(cfg.bus),
        )
    import logging

    from tokenstation.daemon.hardening import dumpable, no_core_dumps

    no_core_dumps()  # no seed the daemon handles outlives its use in a core dump
    if dumpable() == 0:
        logging.getLogger("tokenstation.daemon").info(
            "no core dumps: RLIMIT_CORE 0, not dumpable (PR_SET_DUMPABLE 0)"
        )
    try:
        return asyncio.run(serve(cfg))
    except AlreadyRunning as exc:
        raise CliError.of(
            exc,
            "Only one daemon serves a bus: use the one running (`tokenstation status`), "
            "or stop it first.",
        ) from None
    except BusUnavailable as exc:
        raise CliError.of(exc, busaddress.reach_advice(cfg.bus)) from None
    except StoreRefused as exc:
        raise CliError.of(exc) from None
