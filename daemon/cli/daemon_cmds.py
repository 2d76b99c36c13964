"""`tokenstation daemon | status | tokens`: the resident service and its read-outs."""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

from ..client import DaemonError, DaemonNotRunning, StationClient
from ..config import CLOCK_TRUST, Config, ConfigError, load
from ..store import Store
from ..token.errors import SECURITY_KEY_WORDS
from .common import EXIT_FAILED, EXIT_NO_READER, EXIT_REFUSED, EXIT_USAGE, CliError, emit_json, utc

EXIT_FOR_KIND = {
    "not-present": EXIT_NO_READER,
    "refused": EXIT_REFUSED,
    "needs-confirmation": EXIT_REFUSED,
    "invalid": EXIT_USAGE,
}


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register daemon, status and tokens."""
    p = sub.add_parser(
        "daemon",
        help="run the resident service (PC/SC monitor, drift check, D-Bus API)",
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
    p.set_defaults(func=cmd_daemon, default_log_level="info")

    p = sub.add_parser("status", help="what the running daemon sees")
    _client_args(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("tokens", help="the token registry: drift history, rate and forecast")
    p.add_argument("serial", nargs="?", help="one token, with its history")
    p.add_argument(
        "--plot", nargs=2, metavar=("SERIAL", "FILE"), help="draw SERIAL's drift history as PNG"
    )
    p.add_argument(
        "--config", type=Path, metavar="FILE", help="to find the registry without a daemon"
    )
    _client_args(p)
    p.set_defaults(func=cmd_tokens)


def _client_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bus", choices=["session", "system"], default="session", help="daemon's bus")
    p.add_argument("--json", action="store_true", help="print JSON on stdout")


def load_config(path: Path | None) -> Config:
    """The config file (XDG default when None), errors as usage errors."""
    try:
        return load(path, required=path is not None)
    except ConfigError as exc:
        raise CliError(
            f"configuration: {exc}", EXIT_USAGE, "Fix the file and start again."
        ) from None


def cmd_daemon(args: argparse.Namespace) -> int:
    """Run the service until SIGTERM."""
    from ..service import AlreadyRunning, BusUnavailable, serve

    cfg = load_config(args.config)
    try:
        cfg = cfg.with_flags(
            bus=args.bus,
            drift_threshold_s=args.threshold,
            auto_sync=args.auto_sync,
            clock_trust=args.clock_trust,
            state_dir=args.state_dir,
        )
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    try:
        return asyncio.run(serve(cfg))
    except AlreadyRunning as exc:
        raise CliError(str(exc), EXIT_FAILED, "Stop the other one first.") from None
    except BusUnavailable as exc:
        raise CliError(
            str(exc), EXIT_FAILED, "Is a D-Bus session running (DBUS_SESSION_BUS_ADDRESS)?"
        ) from None


def daemon_call(bus: str, fn: Any) -> Any:
    """Run ``fn(client)`` against the daemon; map its errors to CliError."""

    async def run() -> Any:
        client = await StationClient.connect(bus)
        try:
            return await fn(client)
        finally:
            await client.close()

    try:
        return asyncio.run(run())
    except DaemonError as exc:
        raise CliError(exc.text, EXIT_FOR_KIND.get(exc.kind, EXIT_FAILED)) from None


def cmd_status(args: argparse.Namespace) -> int:
    """Status and the cards on the readers."""

    async def both(client: StationClient) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return await client.status(), await client.present()

    try:
        status, present = daemon_call(args.bus, both)
    except DaemonNotRunning as exc:
        raise CliError(str(exc), EXIT_FAILED, "Start it with `tokenstation daemon`.") from None
    if args.json:
        emit_json({"ok": True, **status, "present": present})
        return 0
    clock = status.get("host_clock", {})
    print(f"Daemon:     tokenstation {status['version']}, up since {utc(status['started_at'])}")
    print(f"PC/SC:      {status['pcsc']}")
    print(
        f"Host clock: {'trusted' if clock.get('trusted') else 'NOT trusted'}: {clock.get('reason')}"
    )
    print(
        f"Policy:     drift threshold {status['drift_threshold_s']:g} s, auto-sync "
        f"{'on' if status['auto_sync'] else 'off'}"
    )
    print(f"Queue:      {status['queue_length']} job(s){' (paused)' if status['paused'] else ''}")
    if "drop_folder" in status:
        print(f"Mode:       {status['mode']}")
        print(f"Drop:       {status['drop_folder']} ({status['drop_folder_watch']})")
        if "qr_decoders" in status:
            print(f"QR:         {status['qr_decoders']}")
        if status.get("jobs_failed"):
            print(f"Failed:     {status['jobs_failed']} job(s); see `tokenstation queue list`")
    readers = status.get("readers", [])
    print(f"Readers:    {len(readers)}")
    by_reader = {p["reader"]: p for p in present}
    for r in readers:
        print(f"  {r}: {describe_presence(by_reader.get(r))}")
    return 0


def describe_presence(p: dict[str, Any] | None) -> str:
    """One line for what is on a reader."""
    if p is None:
        return "empty"
    if p["state"] == "not-a-token":
        if SECURITY_KEY_WORDS in p.get("detail", ""):
            return str(p["detail"])
        return "a card that is not a programmable token (left alone)"
    if "serial" not in p:
        return f"{p['state']}{': ' + p['detail'] if p.get('detail') else ''}"
    line = f"{p['model']} token {p['serial']}"
    if "drift_words" in p:
        line += f", {p['drift_words']}"
        if not p.get("precise"):
            line += " (measuring)"
    if p.get("sync_offered"):
        line += "; sync offered"
    elif p.get("reason"):
        line += f"; {p['reason']}"
    return line


def _registry_direct(args: argparse.Namespace) -> tuple[Store, float]:
    from ..service import registry_path

    cfg = load_config(args.config)
    path = registry_path(cfg)
    if not path.exists():
        raise CliError(f"no registry at {path} (no token was seen yet)", EXIT_FAILED)
    return Store.read_only(path), cfg.drift_threshold_s


def cmd_tokens(args: argparse.Namespace) -> int:
    """List the registry, one token with history, or plot a token's drift."""
    serial = args.plot[0] if args.plot else args.serial
    try:
        if serial:
            tokens = [daemon_call(args.bus, lambda c: c.token(serial))]
        else:
            tokens = daemon_call(args.bus, lambda c: c.tokens())
    except DaemonNotRunning:
        from ..station import token_view

        store, threshold = _registry_direct(args)
        try:
            records = [store.token(serial)] if serial else store.tokens()
            if serial and records[0] is None:
                raise CliError(f"token {serial} is not in the registry", EXIT_FAILED)
            tokens = [token_view(store, r, threshold, history=bool(serial)) for r in records if r]
        finally:
            store.close()
    if args.plot:
        from ..plot import plot_drift

        out = Path(args.plot[1])
        plot_drift(tokens[0], out)
        if args.json:
            emit_json({"ok": True, "serial": serial, "plot": str(out)})
        else:
            print(f"Drift history of {serial} drawn to {out}.")
        return 0
    if args.json:
        emit_json({"ok": True, "tokens": tokens})
        return 0
    if not tokens:
        print("No token in the registry yet.")
    for t in tokens:
        _print_token(t, detailed=bool(serial))
    return 0


def _print_token(t: dict[str, Any], *, detailed: bool) -> None:
    rate = t.get("rate")
    drift = f"last drift {t['last_drift_s']:+.1f} s" if "last_drift_s" in t else "no drift yet"
    line = f"{t['serial']}  {t['model']:<14} {drift}"
    if rate:
        line += f", {rate['seconds_per_day']:+.2f} s/day ({rate['ppm']:+.1f} ppm)"
        crosses = rate.get("crosses_threshold_at")
        if crosses is not None:
            line += (
                "; beyond the threshold now"
                if crosses <= time.time() + 1
                else f"; crosses the threshold about {utc(crosses)[:10]}"
            )
    else:
        line += "; rate: too little history"
    print(line)
    if not detailed:
        return
    s = t.get("settings")
    print(
        f"  settings: {s['hmac'].upper()}, {s['period']} s step, {s['display_timeout']} s display"
        if s
        else "  settings: unknown to this station"
    )
    print(
        f"  seen {utc(t['first_seen'])} .. {utc(t['last_seen'])}, "
        f"{t['measurements']} drift readings"
    )
    for op in t.get("operations", []):
        print(f"  {utc(op['at'])}  {op['kind']} {op['outcome']}: {op['detail']}")
