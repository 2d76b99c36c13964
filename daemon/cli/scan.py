"""`tokenstation scan FILE...`: what each file is and whether a token can take it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenstation.daemon.cli.commands import summary
from tokenstation.daemon.cli.common import EXIT_OK, EXIT_USAGE, emit_json

if TYPE_CHECKING:
    import argparse

    from tokenstation.daemon.intake.payload import Verdict

_MISSING_NEXT = "Check the name and the path; nothing was read."


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register scan."""
    p = sub.add_parser(
        "scan",
        help=summary("scan"),
        description="The drop folder's pipeline without queuing: each file's kind, verdict "
        "(ok, rejected, error, ignored), reason, warnings, accounts and the token each is "
        "bound to (a <serial>.png name, a CSV row). Secrets are shown as fingerprints only. "
        "Exit 0 when every file is ok or ignored, 2 otherwise.",
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--json", action="store_true", help="print JSON on stdout")
    p.set_defaults(**_DEFAULTS)


def quick_args(argv: list[str]) -> argparse.Namespace | None:
    """``scan FILE... [--json]`` as the parser reads it, without building the parser.

    argparse and building and running the parsers cost every scan about 4 ms (its
    messages load gettext's locale). None for any other words (an option, --help, no
    file, a name starting with "-"): the parser reads those, and words any error, as ever.
    """
    if argv[:1] != ["scan"]:
        return None
    files = [word for word in argv[1:] if word != "--json"]
    if not files or any(word.startswith("-") for word in files):
        return None
    from tokenstation.daemon.cli.quick import namespace

    return namespace(
        "scan",
        _DEFAULTS,
        files=[Path(word) for word in files],
        json=len(files) < len(argv) - 1,
    )


def _scan(path: Path) -> tuple[Verdict, str]:
    """The verdict on ``path`` and, when it is refused, what to do."""
    from tokenstation.daemon.intake.ingest import scan_path
    from tokenstation.daemon.intake.payload import Verdict, advice

    if not path.exists() and not path.is_symlink():
        return Verdict(str(path), "missing", "error", "no such file or folder"), _MISSING_NEXT
    v = scan_path(path)
    v.file = str(path)
    return v, advice(v.kind, v.reason) if v.verdict in ("rejected", "error") else ""


def _accounts(v: Verdict) -> list[dict[str, Any]]:
    """Each account as JSON, with the serial its job would be bound to ("" for none)."""
    bound = {id(c.account): c.serial for c in v.candidates}
    return [{**a.as_dict(), "serial": bound.get(id(a), "")} for a in v.accounts]


def _account_line(d: dict[str, Any]) -> str:
    name = f"{d['issuer']}:{d['account']}" if d["issuer"] else d["account"] or "(no name)"
    timing = f"{d['period']} s" if d["type"] == "totp" else "counter-based"
    line = (
        f"  {name}: {str(d['type']).upper()} {d['algorithm']}, {d['digits']} digits, {timing}, "
        f"secret {d['secret_fingerprint']}"
    )
    return line + (f", bound to token {d['serial']}" if d["serial"] else "")


def cmd_scan(args: argparse.Namespace) -> int:
    """Scan every file; report each."""
    import gc

    # The first file loads the pipeline (Pillow, zxing-cpp): tens of thousands of objects
    # that no cycle collection needs to walk while they are made (about 2 ms).
    gc.disable()
    try:
        results = [_scan(args.files[0])]
    finally:
        gc.enable()
    results += [_scan(path) for path in args.files[1:]]
    all_good = all(v.verdict in ("ok", "ignored") for v, _ in results)
    if args.json:
        files = [
            {**v.as_dict(), "accounts": _accounts(v), "next_step": next_step}
            for v, next_step in results
        ]
        emit_json({"ok": all_good, "files": files})
        return EXIT_OK if all_good else EXIT_USAGE
    for v, next_step in results:
        print(f"{v.file}: {v.verdict} ({v.kind}){': ' + v.reason if v.reason else ''}")
        for d in _accounts(v):
            print(_account_line(d))
        for w in v.warnings:
            print(f"  warning: {w}")
        if next_step:
            print(f"  what to do: {next_step}")
    return EXIT_OK if all_good else EXIT_USAGE


#: What the parser sets besides the words. Nothing is left to finish once the report is
#: out, so the process may end without Python's teardown (``quick_exit``).
_DEFAULTS: dict[str, Any] = {"func": cmd_scan, "quick_exit": True}
