"""`tokenstation status | tokens`: what the running daemon sees, and the token registry.

Both are reads: they never create a file or folder. Without a daemon, `status` exits 3
(saying what is missing) and `tokens` reads the registry file directly.
"""

from __future__ import annotations

import time

from tokenstation.daemon.cli.commands import summary
from tokenstation.daemon.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    CliError,
    as_path,
    emit_json,
    ensure_logging,
    load_config,
    note,
    rough_drift_words,
    utc,
)
from tokenstation.daemon.cli.daemon_link import DaemonAbsent, DaemonRefused, daemon_call
from tokenstation.daemon.token.errors import SECURITY_KEY_MARK

TYPE_CHECKING = False  # True for type checkers; saves importing typing at start-up
if TYPE_CHECKING:
    import argparse
    from pathlib import Path
    from typing import Any

    from tokenstation.daemon.bus.client import StationClient
    from tokenstation.daemon.config import Config
    from tokenstation.daemon.registry.store import Store


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register status and tokens."""
    p = sub.add_parser(
        "status",
        help=summary("status"),
        description="Readers and what is on them, the host clock, the policy and the queue, "
        "as the running daemon sees them. Exit 3 when there is no daemon (or no D-Bus bus).",
    )
    _client_args(p)
    p.set_defaults(**_STATUS_DEFAULTS)

    p = sub.add_parser(
        "tokens",
        help=summary("tokens"),
        description="Every token this station has seen, from the running daemon or, when "
        "none runs, from the registry file directly (read only; nothing is created).",
    )
    p.add_argument("serial", nargs="?", help="one token, with its history")
    p.add_argument(
        "--plot",
        nargs=2,
        metavar=("SERIAL", "FILE"),
        help="draw SERIAL's drift history, fitted rate and forecast to FILE (.png or .svg; "
        "needs matplotlib)",
    )
    p.add_argument(
        "--config", type=as_path, metavar="FILE", help="to find the registry without a daemon"
    )
    _client_args(p)
    p.set_defaults(func=cmd_tokens, lazy_logging=True)


def quick_args(argv: list[str]) -> argparse.Namespace | None:
    """``status [--json]`` as the parser reads it, without building the parser (None for
    any other words: the parser reads those, and words any error, as ever)."""
    if argv not in (["status"], ["status", "--json"]):
        return None
    from tokenstation.daemon.cli.quick import namespace

    return namespace("status", _STATUS_DEFAULTS, bus="session", json=len(argv) == 2)


def _client_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bus", choices=["session", "system"], default="session", help="daemon's bus")
    p.add_argument("--json", action="store_true", help="print JSON on stdout")


def cmd_status(args: argparse.Namespace) -> int:
    """Status and the cards on the readers."""

    async def both(client: StationClient) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return await client.status(), await client.present()

    status, present = daemon_call(args.bus, both)
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
    store = status.get("store")
    if isinstance(store, dict):
        where = f"{store.get('backend')} {store.get('location')}"
        state = "reachable" if store.get("reachable") else f"UNREACHABLE: {store.get('detail')}"
        print(f"Station:    {status.get('station', '')}; store {where} ({state})")
    length = status["queue_length"]
    shown = "unknown" if length == -1 else f"{length} job(s)"
    if store and store.get("backend") == "postgresql":
        shown += " waiting at any station"
    print(f"Queue:      {shown}{' (paused)' if status['paused'] else ''}")
    if "drop_folder" in status:
        print(f"Mode:       {status['mode']}")
        print(f"Drop:       {status['drop_folder']} ({status['drop_folder_watch']})")
        if status.get("drop_folder_writers"):
            print(f"            others may write in it: {status['drop_folder_writers']}")
        if "qr_decoders" in status:
            print(f"QR:         {status['qr_decoders']}")
        if status.get("jobs_failed"):
            print(f"Failed:     {status['jobs_failed']} job(s); see `tokenstation queue list`")
        if status.get("handover", {}).get("pending"):
            print(
                f"Hand-over:  {status['handover']['pending']} burned token(s) wait for their "
                "seed's hand-over: `tokenstation export` (docs/handover.md)"
            )
        push = status.get("handover_push")
        if isinstance(push, dict) and push.get("problem"):
            print(f"Push:       {push['url']}: {push['problem']}")
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
        if SECURITY_KEY_MARK in p.get("detail", ""):
            return str(p["detail"])
        return "a card that is not a programmable token (left alone)"
    if "serial" not in p:
        return f"{p['state']}{': ' + p['detail'] if p.get('detail') else ''}"
    line = f"{p['model']} token {p['serial']}"
    if p.get("holds_words"):  # what a token with profiles holds, in its family's words
        line += f", {p['holds_words']}"
    if "drift_words" in p:
        precise = p.get("precise")
        line += f", {p['drift_words'] if precise else rough_drift_words(p['drift_s'])}"
        if not precise:
            line += ", measuring to a tenth"
    if p.get("sync_offered"):
        line += "; sync offered"
    elif p.get("reason"):
        line += f"; {p['reason']}"
    return line


def _registry_direct(args: argparse.Namespace, serial: str | None) -> list[dict[str, Any]]:
    """The registry read from its file (no daemon): read only, nothing created."""
    from tokenstation.daemon import xdg

    cfg = load_config(args.config)
    path = xdg.registry_file(cfg.state_dir)
    if not cfg.store.shared and not path.exists():
        if serial:
            _unknown_serial(serial, f"there is no registry at {path} yet")
        return []
    ensure_logging()
    from tokenstation.daemon.registry.store import Store
    from tokenstation.daemon.station import token_view

    store = _shared_registry(cfg) if cfg.store.shared else Store.read_only(path)
    try:
        records = [store.token(serial)] if serial else store.tokens()
        if serial and records[0] is None:
            _unknown_serial(serial)
        return [
            token_view(store, r, cfg.drift_threshold_s, history=bool(serial)) for r in records if r
        ]
    finally:
        store.close()


def _shared_registry(cfg: Config) -> Store:
    """The registry in the shared database ([store] url), read without a daemon."""
    from tokenstation.daemon.registry.store import Store as SharedStore
    from tokenstation.daemon.storage.database import SchemaMismatch, StoreUnavailable
    from tokenstation.daemon.storage.opening import shared_database

    try:
        db = shared_database(cfg)
        assert db is not None
        return SharedStore(db, station=cfg.station)
    except (StoreUnavailable, SchemaMismatch) as exc:
        raise CliError.of(exc) from None


def _unknown_serial(serial: str, why: str = "") -> None:
    raise CliError(
        f"token {serial} is not in the registry{': ' + why if why else ''}",
        EXIT_USAGE,
        "See the serials it knows with `tokenstation tokens`; a token is recorded when it "
        "is placed on a reader while the daemon runs.",
    )


def _from_daemon(args: argparse.Namespace, serial: str | None) -> list[dict[str, Any]]:
    try:
        if serial:
            return [daemon_call(args.bus, lambda c: c.token(serial), fallback=True)]
        result: list[dict[str, Any]] = daemon_call(args.bus, lambda c: c.tokens(), fallback=True)
    except DaemonRefused as exc:
        if serial and exc.kind == "not-present":
            _unknown_serial(serial)
        raise
    return result


def _check_plot_path(out: Path) -> None:
    """A file the plot can be written to, or a sentence (before any registry lookup)."""
    if out.is_dir():
        raise CliError(
            f"{out} is a folder", EXIT_USAGE, "Give a file name inside it; nothing was written."
        )
    if out.suffix.lower() not in (".png", ".svg"):
        raise CliError(
            f"{out} does not end in .png or .svg",
            EXIT_USAGE,
            "Name the file .png for a picture or .svg for a drawing; nothing was written.",
        )
    if not out.parent.is_dir():
        raise CliError(
            f"there is no folder {out.parent} to write {out.name} into",
            EXIT_USAGE,
            "Create the folder or give another path; nothing was written.",
        )


def _plot(token: dict[str, Any], out: Path) -> None:
    """Draw the plot, every failure a sentence."""
    try:
        from tokenstation.daemon.registry.plot import plot_drift
    except ImportError:
        raise CliError(
            "drawing the plot needs matplotlib, which is not installed",
            EXIT_FAILED,
            "Install python3-matplotlib (Debian) or `pip install 'tokenstation[plot]'`; "
            "`tokenstation tokens SERIAL` lists the same history as text.",
        ) from None
    try:
        plot_drift(token, out)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE, "Place the token on a reader first.") from None
    except OSError as exc:
        raise CliError(
            f"{out} cannot be written ({exc.strerror or 'refused'})",
            EXIT_FAILED,
            "Give a path you may write to; nothing was written.",
        ) from None


def cmd_tokens(args: argparse.Namespace) -> int:
    """List the registry, one token with history, or plot a token's drift."""
    serial = args.plot[0] if args.plot else args.serial
    if args.plot:
        _check_plot_path(as_path(args.plot[1]))
    via = "daemon"
    try:
        tokens = _from_daemon(args, serial)
    except DaemonAbsent as exc:
        via = "registry"
        note(f"{exc.message}; reading the registry file directly")
        tokens = _registry_direct(args, serial)
    if args.plot:
        out = as_path(args.plot[1])
        _plot(tokens[0], out)
        if args.json:
            emit_json({"ok": True, "serial": serial, "plot": str(out), "via": via})
        else:
            print(f"Drift history of {serial} drawn to {out}.")
        return 0
    if args.json:
        emit_json({"ok": True, "tokens": tokens, "via": via})
        return 0
    if not tokens:
        print(
            "No token in the registry yet: the daemon records each token placed on a reader "
            "while it runs."
        )
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
    if t.get("last_station"):
        line += f"; last seen at {t['last_station']}"
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
        at = f" at {op['station']}" if op.get("station") else ""
        print(f"  {utc(op['at'])}  {op['kind']} {op['outcome']}{at}: {op['detail']}")


#: What the parser sets for `status` besides the words.
_STATUS_DEFAULTS: dict[str, object] = {"func": cmd_status, "lazy_logging": True}
