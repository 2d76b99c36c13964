"""`tokenstation export`: hand the seeds made here over to an identity server (or erase them)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from tokenstation.daemon.cli.commands import summary
from tokenstation.daemon.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    CliError,
    as_path,
    emit_json,
    load_config,
    warn,
)
from tokenstation.daemon.cli.progress import Progress

if TYPE_CHECKING:
    from collections.abc import Callable

    from tokenstation.daemon.config import Config
    from tokenstation.daemon.handover.protection import Protection
    from tokenstation.daemon.provisioning.queue import JobQueue

FORMAT_NAMES = ("pskc", "entra-csv", "entra-json", "oath-csv")  # the keys of handover.FORMATS


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register export."""
    p = sub.add_parser(
        "export",
        help=summary("export"),
        description="Writes every burned token whose seed this station made and still "
        "holds (or one batch) in burn order, atomically, 0600. A token the format cannot "
        "carry is named and stays pending. `--erase` erases the exported seeds instead. "
        "See docs/handover.md.",
    )
    p.add_argument("--format", choices=FORMAT_NAMES, help="pskc, entra-csv, entra-json, oath-csv")
    p.add_argument("--out", type=as_path, metavar="FILE", help="the file to write")
    key = p.add_mutually_exclusive_group()
    key.add_argument("--psk-file", type=as_path, metavar="F", help="PSKC: 32 hex digits, 0600")
    key.add_argument("--password-file", type=as_path, metavar="F", help="PSKC: PBKDF2, 0600")
    key.add_argument("--plaintext", action="store_true", help="PSKC without encryption")
    p.add_argument("--batch", metavar="B", help="only this batch (as `queue generate` said)")
    p.add_argument("--erase", action="store_true", help="erase the exported seeds (no file)")
    p.add_argument("--config", type=Path, metavar="FILE", help="TOML file (default: XDG)")
    p.add_argument("--json", action="store_true", help="print JSON on stdout (no seed)")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    """Export (or erase) the held seeds."""
    cfg = load_config(args.config)
    if args.erase:
        if args.format or args.out:
            raise CliError("--erase writes no file", EXIT_USAGE, "Leave out --format/--out.")
        return _with_queue(cfg, lambda q: _erase(args, q))
    if not args.format or not args.out:
        raise CliError(
            "give --format and --out (or --erase)", EXIT_USAGE, "See `tokenstation export -h`."
        )
    protection = _protection(args)
    return _with_queue(cfg, lambda q: _export(args, q, protection))


def _protection(args: argparse.Namespace) -> Protection:
    from tokenstation.daemon.handover.protection import (
        Protection,
        ProtectionProblem,
        load_password,
        load_psk,
    )

    encrypted = args.format == "pskc"
    if not encrypted:
        if args.psk_file or args.password_file or args.plaintext:
            raise CliError(
                f"{args.format} is not encrypted: keep the file like the seeds it holds",
                EXIT_USAGE,
                "Leave out --psk-file/--password-file/--plaintext.",
            )
        return Protection()
    try:
        if args.psk_file:
            return load_psk(args.psk_file)
        if args.password_file:
            return load_password(args.password_file)
    except ProtectionProblem as exc:
        raise CliError(str(exc), EXIT_USAGE, "Nothing was written.") from None
    if not args.plaintext:
        raise CliError(
            "a PSKC file is encrypted: give --psk-file (32 hex digits) or --password-file",
            EXIT_USAGE,
            "Or --plaintext, only when the file goes straight to the identity server.",
        )
    return Protection(plaintext=True)


def _with_queue(cfg: Config, run: Callable[[JobQueue], int]) -> int:
    from tokenstation.daemon.provisioning.provisioner import default_paths
    from tokenstation.daemon.provisioning.queue import JobQueue, SealBroken
    from tokenstation.daemon.storage.database import SchemaMismatch, StoreUnavailable
    from tokenstation.daemon.storage.opening import secret_box, shared_database
    from tokenstation.daemon.storage.secretbox import KeyProblem

    try:
        shared = shared_database(cfg)
        if shared is None:
            queue = JobQueue(default_paths(cfg)[1], station=cfg.station)
        else:
            queue = JobQueue(shared, station=cfg.station, box=secret_box(cfg))
            queue.check_key()
    except StoreUnavailable as exc:
        raise CliError.of(exc, "Check [store] url and the server.") from None
    except (SchemaMismatch, KeyProblem) as exc:
        raise CliError.of(exc) from None
    try:
        return run(queue)
    except SealBroken as exc:
        raise CliError.of(exc, "Nothing was marked exported.") from None
    finally:
        queue.close()


def _export(args: argparse.Namespace, queue: JobQueue, protection: Protection) -> int:
    from tokenstation.daemon.handover.export import NothingToExport, export
    from tokenstation.daemon.handover.formats import FORMATS

    out: Path = args.out
    if out.is_dir() or not out.parent.is_dir():
        raise CliError(f"{out} is not a file in a folder", EXIT_USAGE, "Give a file name.")
    try:
        with Progress("exporting seeds", json=args.json) as bar:
            fmt = FORMATS[args.format]
            done = export(queue, fmt, protection, out, args.batch, progress=bar.update)
            bar.finish(len(done.job_ids))
    except NothingToExport as exc:
        raise CliError.of(
            exc,
            "Nothing was written. `tokenstation queue list --all` shows the hand-over states.",
            message=str(exc) + "".join(f"; job {x['job_id']}: {x['reason']}" for x in exc.left),
            details={"left": exc.left},
        ) from None
    except OSError as exc:
        raise CliError(
            f"{out} cannot be written ({exc.strerror})", EXIT_FAILED, "Nothing was marked."
        ) from None
    if args.json:
        emit_json(
            {
                "ok": True,
                "format": args.format,
                "out": str(out),
                "batch": args.batch,
                "job_ids": done.job_ids,
                "serials": done.serials,
                "left": done.left,
            }
        )
    else:
        print(f"Wrote {len(done.job_ids)} token(s) to {out} ({args.format}, 0600, burn order).")
        print(
            "Load it into the identity server, then erase the seeds here with "
            f"`tokenstation export --erase{' --batch ' + args.batch if args.batch else ''}` "
            "(or they are erased after [handover] keep_days); delete the file once loaded."
        )
    for x in done.left:
        warn(f"left pending: job {x['job_id']} ({x['serial']}): {x['reason']}")
    return 0


def _erase(args: argparse.Namespace, queue: JobQueue) -> int:
    n = queue.erase_exported(args.batch)
    waiting = queue.handover_counts().get("pending", 0)
    if args.json:
        emit_json({"ok": True, "erased": n, "batch": args.batch, "pending": waiting})
        return 0
    print(f"Erased {n} exported seed(s).")
    if waiting:
        print(f"{waiting} burned token(s) still wait for their hand-over (never exported).")
    return 0
