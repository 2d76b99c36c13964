"""`tokenstation scan FILE...`: what each file is and whether a token can take it."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import EXIT_OK, EXIT_USAGE, emit_json


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register scan."""
    p = sub.add_parser(
        "scan",
        help="decode and check QR images, otpauth text files and CSV batches (queues nothing)",
        description="The drop folder's pipeline without queuing: each file's kind, verdict "
        "(ok, rejected, error, ignored), reason, warnings and accounts. Secrets are shown "
        "as fingerprints only. Exit 0 when every file is ok or ignored, 2 otherwise.",
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--json", action="store_true", help="print JSON on stdout")
    p.set_defaults(func=cmd_scan)


def cmd_scan(args: argparse.Namespace) -> int:
    """Scan every file; report each."""
    from ..ingest import scan_path
    from ..payload import advice

    verdicts = []
    for path in args.files:
        v = scan_path(path)
        v.file = str(path)
        verdicts.append(v)
    all_good = all(v.verdict in ("ok", "ignored") for v in verdicts)
    if args.json:
        emit_json({"ok": all_good, "files": [v.as_dict() for v in verdicts]})
    else:
        for v in verdicts:
            print(f"{v.file}: {v.verdict} ({v.kind}){': ' + v.reason if v.reason else ''}")
            for a in v.accounts:
                d = a.as_dict()
                print(
                    f"  {a.label() or '(no name)'}: {d['type']} {d['algorithm']}, "
                    f"{d['digits']} digits, {d['period']} s, secret {d['secret_fingerprint']}"
                )
            for w in v.warnings:
                print(f"  warning: {w}")
            if v.verdict in ("rejected", "error"):
                print(f"  what to do: {advice(v.kind, v.reason)}")
    return EXIT_OK if all_good else EXIT_USAGE
