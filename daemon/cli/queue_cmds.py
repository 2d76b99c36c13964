"""`tokenstation queue list|add|remove|retry|pause|resume`: the burn queue, via the daemon."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..client import DaemonNotRunning, StationClient
from .common import EXIT_FAILED, CliError, emit_json, utc
from .daemon_cmds import daemon_call


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register queue and its actions."""
    p = sub.add_parser(
        "queue",
        help="the burn queue: list, add a file, remove, retry, pause, resume",
        description="Talks to the running daemon. Secrets never leave it: jobs show the "
        "fingerprint of their secret (first 8 hex digits of its SHA-256).",
    )
    p.add_argument("--bus", choices=["session", "system"], default="session", help="daemon's bus")
    p.add_argument("--json", action="store_true", help="print JSON on stdout")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = actions.add_parser("list", help="every job (--all includes burned and removed)")
    ls.add_argument("--all", action="store_true")
    add = actions.add_parser("add", help="queue a QR image, otpauth text file or CSV")
    add.add_argument("file", type=Path)
    for name, text in (
        ("remove", "remove a queued or failed job"),
        ("retry", "retry a failed job"),
    ):
        a = actions.add_parser(name, help=text)
        a.add_argument("job_id", type=int, metavar="ID")
    actions.add_parser("pause", help="stop offering and burning jobs")
    actions.add_parser("resume", help="offer and burn jobs again")
    for a in actions.choices.values():  # accepted after the action too
        a.add_argument(
            "--json", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    p.set_defaults(func=cmd_queue)


def cmd_queue(args: argparse.Namespace) -> int:
    """Run one queue action through the daemon."""
    try:
        return _run(args)
    except DaemonNotRunning as exc:
        raise CliError(str(exc), EXIT_FAILED, "Start it with `tokenstation daemon`.") from None


def _run(args: argparse.Namespace) -> int:
    action = args.action
    if action == "list":
        states = () if args.all else ("queued", "burning", "failed")
        if args.json:
            jobs: list[dict[str, Any]] = daemon_call(args.bus, lambda c: c.jobs(states))
            emit_json({"ok": True, "jobs": jobs})
            return 0

        async def show(c: StationClient) -> int:
            shown = 0
            async for j in c.iter_jobs(states):  # page by page: any queue length
                print(_job_line(j))
                shown += 1
            return shown

        if not daemon_call(args.bus, show):
            print("No jobs.")
        return 0
    if action == "add":
        path = str(args.file.resolve())
        result = daemon_call(args.bus, lambda c: c.ingest(path))
        if args.json:
            emit_json({"ok": True, **result})
            return 0
        queued = result.get("queued", [])
        for j in queued:
            print(f"Queued job {j['id']}: {j['label']} (secret {j['secret_fingerprint']}).")
        if result.get("queued_count", 0) > len(queued):
            print(f"... {result['queued_count']} jobs queued in all (`tokenstation queue list`).")
        for d in result.get("duplicates", []):
            print(f"Not queued again: {d}.")
        if result.get("seen_before"):
            print("This file was taken before; nothing queued again.")
        print(f"{args.file} still holds the secret: delete it when you no longer need it.")
        return 0
    if action in ("remove", "retry"):

        async def act(c: StationClient) -> dict[str, Any]:
            if action == "remove":
                return await c.remove_job(args.job_id)
            return await c.retry_job(args.job_id)

        job = daemon_call(args.bus, act)
        if args.json:
            emit_json({"ok": True, "job": job})
        else:
            print(f"Job {job['id']} ({job['label']}) is now {job['state']}.")
        return 0
    paused = action == "pause"
    daemon_call(args.bus, lambda c: c.pause(paused))
    if args.json:
        emit_json({"ok": True, "paused": paused})
    else:
        print("Queue paused." if paused else "Queue resumed.")
    return 0


def _job_line(j: dict[str, Any]) -> str:
    bound = f" -> token {j['serial']}" if j["serial"] else ""
    return (
        f"{j['id']:>5}  {j['state']:<8} {j['label']}{bound}  {j['algorithm']}/"
        f"{j['period']}s  secret {j['secret_fingerprint']}  from {j['source']}"
        f"  {utc(j['created'])}" + (f"\n       {j['reason']}" if j["reason"] else "")
    )
