"""`tokenstation store migrate|init-key`: the schema of the databases, the key of shared seeds."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from tokenstation.daemon.cli.commands import summary
from tokenstation.daemon.cli.common import (
    EXIT_REFUSED,
    CliError,
    emit_json,
    load_config,
)

if TYPE_CHECKING:
    from tokenstation.daemon.config import Config


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register store and its actions."""
    p = sub.add_parser(
        "store",
        help=summary("store"),
        description="With `[store] url` (or --store) the registry, burn queue and "
        "provisioning log are in a PostgreSQL database several stations share; without, "
        "in this station's own SQLite files (which the daemon migrates by itself).",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    mig = actions.add_parser(
        "migrate", help="create or upgrade the schema (once per upgrade, from any station)"
    )
    key = actions.add_parser(
        "init-key",
        help="create the key that seals seeds in the shared database (0600; copy it to "
        "every station)",
    )
    key.add_argument("--key-file", type=Path, metavar="FILE", help="default: [store] key_file")
    for a in (mig, key):
        a.add_argument("--config", type=Path, metavar="FILE", help="TOML file (default: XDG)")
        a.add_argument("--store", metavar="URL", help="postgresql://... (default: [store] url)")
        a.add_argument("--json", action="store_true", help="print JSON on stdout")
    p.set_defaults(func=cmd_store)


def cmd_store(args: argparse.Namespace) -> int:
    """Run one store action."""
    from tokenstation.daemon.config import ConfigError

    cfg = load_config(args.config)
    try:
        cfg = cfg.with_flags(store_url=args.store)
    except ConfigError as exc:
        raise CliError.of(exc, "Give a postgresql:// URL.") from None
    if args.action == "init-key":
        return _init_key(args, cfg)
    return _migrate(args, cfg)


def _init_key(args: argparse.Namespace, cfg: Config) -> int:
    from tokenstation.daemon.storage.opening import key_file
    from tokenstation.daemon.storage.secretbox import KeyProblem, init_key

    path = args.key_file if args.key_file is not None else key_file(cfg)
    if path.exists() or path.is_symlink():  # refused for safety (exit 4), nothing written
        raise CliError(
            f"{path} exists already: a new key would make every queued seed unreadable",
            EXIT_REFUSED,
            "Keep it (copy it to the other stations) or move it away first.",
        )
    try:
        init_key(path)
    except KeyProblem as exc:
        raise CliError.of(exc) from None
    if args.json:
        emit_json({"ok": True, "key_file": str(path)})
    else:
        print(
            f"Created {path} (0600). Copy it, 0600, to every station of the shared database "
            "and name it in their [store] key_file: a station with another key cannot burn "
            "the seeds queued by the others. Keep a copy safe: without it the queued seeds "
            "cannot be read."
        )
    return 0


def _migrate(args: argparse.Namespace, cfg: Config) -> int:
    from tokenstation.daemon.provisioning.provisioner import default_paths
    from tokenstation.daemon.service import registry_path
    from tokenstation.daemon.storage import schema
    from tokenstation.daemon.storage.database import Database, SchemaMismatch, StoreUnavailable
    from tokenstation.daemon.storage.opening import shared_database
    from tokenstation.daemon.storage.sqlite_db import SqliteDatabase

    try:
        shared = shared_database(cfg)
    except StoreUnavailable as exc:
        raise CliError.of(
            exc, "Check [store] url (or the PG* environment) and that the server runs."
        ) from None
    targets: list[tuple[Database, tuple[schema.Part, ...]]]
    if shared is not None:
        targets = [(shared, schema.PARTS)]
    else:
        _folder, queue_path, _log = default_paths(cfg)
        targets = [
            (SqliteDatabase(registry_path(cfg), ()), (schema.REGISTRY,)),
            (SqliteDatabase(queue_path, ()), (schema.QUEUE,)),
        ]
    report: dict[str, dict[str, object]] = {}
    try:
        for db, parts in targets:
            for name, (before, after) in schema.migrate(db, parts).items():
                report[name] = {"location": db.location, "before": before, "after": after}
    except SchemaMismatch as exc:
        raise CliError.of(exc) from None
    except StoreUnavailable as exc:
        raise CliError.of(exc, "Try again when it can be reached.") from None
    finally:
        for db, _parts in targets:
            db.close()
    if args.json:
        emit_json({"ok": True, "parts": report})
    else:
        for name, r in report.items():
            change = (
                f"version {r['before']} -> {r['after']}"
                if r["before"] != r["after"]
                else f"version {r['after']}, up to date"
            )
            print(f"{name}: {change} ({r['location']})")
    return 0
