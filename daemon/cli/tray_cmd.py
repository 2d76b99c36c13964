"""`tokenstation tray`: the desktop side (icon and notifications), a separate process."""

from __future__ import annotations

import argparse
from pathlib import Path

from tokenstation.daemon.cli.commands import summary
from tokenstation.daemon.cli.common import EXIT_UNAVAILABLE, CliError, load_config


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register tray."""
    p = sub.add_parser(
        "tray",
        help=summary("tray"),
        description="Talks to the daemon over D-Bus; may start before it and survives its "
        "restarts. PYSTRAY_BACKEND (gtk, appindicator, xorg) overrides the icon backend.",
    )
    p.add_argument("--bus", choices=["session", "system"], default="session", help="daemon's bus")
    p.add_argument(
        "--no-icon",
        action="store_true",
        help="no tray icon: events go to notifications and the log",
    )
    p.add_argument("--config", type=Path, metavar="FILE", help="for [notify] (default: XDG path)")
    p.set_defaults(func=cmd_tray, default_log_level="info")


def cmd_tray(args: argparse.Namespace) -> int:
    """Run the tray until SIGTERM or Quit."""
    import asyncio

    from tokenstation.tray.icon import prepare_gtk_environment

    prepare_gtk_environment()  # in this process, before anything can import GTK
    from tokenstation.tray.app import TrayApp

    cfg = load_config(args.config)
    from tokenstation.daemon.bus import address as busaddress

    if busaddress.missing("session"):  # notifications go over it, whatever the daemon's bus
        raise CliError(
            f"{busaddress.unreachable('session')}; the tray's notifications need it",
            EXIT_UNAVAILABLE,
            "Start the tray from your desktop session (once installed it starts there at login).",
        )
    return asyncio.run(
        TrayApp(daemon_bus=args.bus, show_icon=not args.no_icon, choices=cfg.notify).run()
    )
