"""`tokenstation queue list|add|generate|burn|remove|retry|pause|resume`: the queue."""

from __future__ import annotations

import argparse

from tokenstation.daemon.cli.commands import summary
from tokenstation.daemon.cli.common import (
    EXIT_REFUSED,
    EXIT_USAGE,
    CliError,
    as_path,
    emit_json,
    os_words,
    utc,
    warn,
)
from tokenstation.daemon.cli.daemon_link import daemon_call
from tokenstation.daemon.cli.progress import Progress

TYPE_CHECKING = False  # True for type checkers; saves importing typing at start-up
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from tokenstation.daemon.bus.client import StationClient

_LIST_ALL = "See every job and its state with `tokenstation queue list --all`."


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register queue and its actions."""
    p = sub.add_parser(
        "queue",
        help=summary("queue"),
        description="Talks to the running daemon (exit 3 when there is none). Secrets never "
        "leave it: jobs show the fingerprint of their secret (first 8 hex digits of its "
        "SHA-256).",
    )
    p.add_argument("--bus", choices=["session", "system"], default="session", help="daemon's bus")
    p.add_argument("--json", action="store_true", help="print JSON on stdout")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = actions.add_parser("list", help="jobs queued, burning or failed")
    ls.add_argument("--all", action="store_true", help="burned and removed jobs too")
    add = actions.add_parser(
        "add",
        help="queue a QR image, otpauth text file or CSV (the file stays where it is)",
    )
    add.add_argument("file", type=as_path, metavar="FILE")
    for name, text in (
        ("remove", "remove a queued or failed job (its secret is erased)"),
        ("retry", "put a failed job back in the queue"),
    ):
        a = actions.add_parser(name, help=text)
        a.add_argument("job_id", type=int, metavar="ID", help="as `queue list` shows it")
    _add_generate_parser(actions)
    burn = actions.add_parser(
        "burn",
        help="burn a queued job onto a token on a reader (accept the offer, as the tray's "
        "Burn does)",
    )
    burn.add_argument("job_id", type=int, metavar="ID", help="as `queue list` shows it")
    burn.add_argument(
        "--serial",
        metavar="S",
        help="the token to burn onto (default: the one the job is bound to, else the one "
        "token on the readers)",
    )
    actions.add_parser("pause", help="stop offering and burning jobs")
    actions.add_parser("resume", help="offer and burn jobs again")
    for a in actions.choices.values():  # accepted after the action too
        a.add_argument(
            "--json", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
        a.add_argument(
            "--bus",
            choices=["session", "system"],
            default=argparse.SUPPRESS,
            help=argparse.SUPPRESS,
        )
    p.set_defaults(func=cmd_queue, lazy_logging=True)


def cmd_queue(args: argparse.Namespace) -> int:
    """Run one queue action through the daemon."""
    if args.action == "list":
        return _list(args)
    if args.action == "add":
        return _add(args)
    if args.action in ("remove", "retry"):
        return _change(args)
    if args.action == "generate":
        return _generate(args)
    if args.action == "burn":
        return _burn(args)
    paused = args.action == "pause"
    daemon_call(args.bus, lambda c: c.pause(paused))
    if args.json:
        emit_json({"ok": True, "paused": paused})
    elif paused:
        print("Queue paused: no job is offered or burned until `tokenstation queue resume`.")
    else:
        print("Queue resumed: waiting jobs are offered again when a token is placed.")
    return 0


def _list(args: argparse.Namespace) -> int:
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
        print(
            "No jobs."
            if args.all
            else "No jobs waiting. Drop an enrolment QR into the drop folder or use "
            "`tokenstation queue add FILE`; `--all` shows burned and removed jobs."
        )
    return 0


def _add(args: argparse.Namespace) -> int:
    file: Path = args.file
    if not file.exists():
        raise CliError(f"no such file: {file}", EXIT_USAGE, "Check the name and the path.")
    path = str(file.resolve())

    async def ingest(c: StationClient) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        result = await c.ingest(path)
        holders = ("queued", "burning", "burned")
        jobs = await c.jobs(holders) if result.get("duplicates") else []
        return result, jobs

    try:
        result, jobs = daemon_call(args.bus, ingest)
    except OSError as exc:  # opened here and passed to the daemon as a descriptor
        raise CliError(
            f"{file} cannot be read ({os_words(exc)})",
            EXIT_USAGE,
            "Give a regular file you may read (not a symbolic link); nothing was queued.",
        ) from None
    queued: list[dict[str, Any]] = result.get("queued", [])
    not_queued = [_duplicate_words(d, result, jobs) for d in result.get("duplicates", [])]
    if result.get("seen_before"):
        not_queued.append(
            f"{file.name} (these very bytes) was taken before, so nothing in it is queued again"
        )
    details = {
        "queued": queued,
        "not_queued": not_queued,
        "duplicates": result.get("duplicates", []),
        "seen_before": bool(result.get("seen_before")),
    }
    if not queued and not result.get("queued_count"):
        raise CliError(
            "nothing queued: " + "; ".join(not_queued or ["the file holds no account"]),
            EXIT_REFUSED,
            "The same secret is never queued twice, so it cannot be burned onto two tokens "
            f"by mistake. {_LIST_ALL}",
            details,
        )
    if args.json:
        emit_json({"ok": True, **result, **details})
        return 0
    for j in queued:
        bound = f", bound to token {j['serial']}" if j.get("serial") else ""
        print(f"Queued job {j['id']}: {j['label']} (secret {j['secret_fingerprint']}{bound}).")
    if result.get("queued_count", 0) > len(queued):
        print(f"... {result['queued_count']} jobs queued in all (`tokenstation queue list`).")
    for why in not_queued:
        warn(f"not queued: {why}")
    print(f"{file} still holds the secret: delete it when you no longer need it.")
    return 0


def _duplicate_words(dup: str, result: dict[str, Any], jobs: list[dict[str, Any]]) -> str:
    """'job 4, Acme:carol (queued)' (the job holding the secret) -> which account of the
    file was not queued, in words."""
    holder = dup.removeprefix("job ").split(",", 1)[0]
    fp = next((j["secret_fingerprint"] for j in jobs if str(j["id"]) == holder), "")
    mine = next(
        (
            f"{a['issuer']}:{a['account']}" if a.get("issuer") else a.get("account")
            for a in result.get("accounts", [])
            if fp and a.get("secret_fingerprint") == fp
        ),
        None,
    )
    what = f"the secret of {mine}" if mine else "a secret in it"
    if dup.endswith("(burned)"):
        return f"{what} was already burned: {dup}"
    return f"{what} is already held by {dup}"


def _change(args: argparse.Namespace) -> int:
    job_id: int = args.job_id
    remove = args.action == "remove"

    async def act(c: StationClient) -> dict[str, Any]:
        return await (c.remove_job(job_id) if remove else c.retry_job(job_id))

    job = daemon_call(args.bus, act)
    if args.json:
        emit_json({"ok": True, "job": job})
    elif remove:
        print(f"Removed job {job['id']} ({job['label']}); its secret is erased.")
    else:
        print(
            f"Job {job['id']} ({job['label']}) is queued again: it is offered when a token "
            "is placed."
        )
    return 0


def _add_generate_parser(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    gen = actions.add_parser(
        "generate",
        help="queue jobs whose seeds the daemon makes (for your identity server)",
        description="The daemon makes a fresh random seed per job (20 bytes for SHA-1, 32 "
        "for SHA-256). They burn like any job; after the burn each seed stays sealed until "
        "`tokenstation export` (or the privacyIDEA push) hands it over. See docs/handover.md.",
    )
    which = gen.add_mutually_exclusive_group(required=True)
    which.add_argument("--count", type=int, metavar="N", help="N jobs for no one in particular")
    which.add_argument(
        "--assign",
        type=as_path,
        metavar="FILE.csv",
        help="one job per row: a header row with `upn` and optionally `serial` (the job is "
        "then bound to that token)",
    )
    gen.add_argument("--issuer", default="tokenstation", help="issuer in the labels ISSUER:upn")
    gen.add_argument("--algorithm", choices=["sha1", "sha256"], default="sha1")
    gen.add_argument("--period", type=int, choices=[30, 60], default=30)


def _generate(args: argparse.Namespace) -> int:
    from tokenstation.daemon.handover.generate import GenerateProblem, read_assignment

    options: dict[str, Any] = {
        "issuer": args.issuer,
        "algorithm": args.algorithm,
        "period": args.period,
    }
    if args.assign is not None:
        try:
            rows = read_assignment(args.assign.read_text("utf-8-sig"))
        except OSError as exc:
            raise CliError(
                f"{args.assign} cannot be read ({exc.strerror})", EXIT_USAGE, "Check the name."
            ) from None
        except (GenerateProblem, UnicodeDecodeError) as exc:
            raise CliError(
                f"{args.assign}: {exc}", EXIT_USAGE, "Fix the file; nothing was queued."
            ) from None
        if not rows:
            raise CliError(f"{args.assign} has no rows", EXIT_USAGE, "Nothing was queued.")
        options["upns"] = [r.upn for r in rows]
        options["serials"] = [r.serial for r in rows]
    else:
        options["count"] = args.count
    total = len(options.get("upns", ())) or args.count
    with Progress("generating seeds", total, json=args.json) as bar:
        on_signal = bar.update if bar.active else None  # signals asked for on a terminal only
        result: dict[str, Any] = daemon_call(
            args.bus, lambda c: c.generate(progress=on_signal, **options)
        )
        bar.finish(len(result.get("jobs", [])))
    jobs: list[dict[str, Any]] = result.get("jobs", [])
    if args.json:
        emit_json({"ok": True, "batch": result["batch"], "job_ids": [j["id"] for j in jobs]})
        return 0
    for j in jobs:
        bound = f", bound to token {j['serial']}" if j.get("serial") else ""
        print(f"Queued job {j['id']}: {j['label']} (secret {j['secret_fingerprint']}{bound}).")
    print(
        f"Batch {result['batch']}: {len(jobs)} jobs queued. Burn them as usual; then "
        f"`tokenstation export --batch {result['batch']} ...` hands their seeds over."
    )
    return 0


def _burn(args: argparse.Namespace) -> int:
    job_id: int = args.job_id

    async def burn(c: StationClient) -> dict[str, Any]:
        serial = args.serial or await _target(c, job_id)
        return await c.burn_job(job_id, serial)

    done = daemon_call(args.bus, burn)
    if args.json:
        emit_json({"ok": True, **done})
        return 0
    job = done.get("job", {})
    into = f" into profile {job['profile']}" if job.get("profile") is not None else ""
    print(
        f"Burned job {job_id} ({job.get('label', '')}) onto token {done['serial']} "
        f"({done.get('model', '')}){into}."
    )
    code = done.get("expected_code")
    if code:
        then = "Switch it off and on: it" if done.get("power_cycle_required") else "It"
        print(f"{then} should show {code[: len(code) // 2]} {code[len(code) // 2 :]} now.")
    return 0


async def _target(c: StationClient, job_id: int) -> str:
    """The serial to burn job ``job_id`` onto: its bound token, else the one token placed."""
    jobs = [j for j in await c.jobs(("queued", "failed")) if j["id"] == job_id]
    if jobs and jobs[0].get("serial"):
        return str(jobs[0]["serial"])
    tokens = [
        str(p["serial"])
        for p in await c.present()
        if p.get("serial") and p.get("state") not in ("not-a-token", "error")
    ]
    if len(tokens) == 1:
        return tokens[0]
    if not tokens:
        raise CliError(
            "no token is on a reader",
            EXIT_USAGE,
            "Place the token (display lit) and run it again; nothing was burned.",
        )
    raise CliError(
        f"tokens {', '.join(tokens)} are on the readers",
        EXIT_USAGE,
        f"Say which with `tokenstation queue burn {job_id} --serial S`; nothing was burned.",
    )


def _onto(j: dict[str, Any]) -> str:
    """' onto 86596320000417' (profile N on a Molto2): the token a job went or goes to."""
    serial = j.get("burned_serial") or j.get("target_serial")
    if not serial:
        return ""
    profile = f" profile {j['profile']}" if j.get("profile") is not None else ""
    return f" {'onto' if j['state'] in ('burned', 'burning') else 'on'} {serial}{profile}"


def _job_line(j: dict[str, Any]) -> str:
    bound = f" -> token {j['serial']}" if j["serial"] else ""
    where = f" at {j['station']}" if j.get("station") else ""
    onto = _onto(j)
    by = f", {j['state']}{onto} by {j['claimed_by']}" if j.get("claimed_by") else ""
    by = by or (f", {j['state']}{onto}" if onto else "")
    return (
        f"{j['id']:>5}  {j['state']:<8} {j['label']}{bound}  {j['algorithm']}/"
        f"{j['period']}s  secret {j['secret_fingerprint']}  from {j['source']}{where}"
        f"  {utc(j['created'])}{by}"
        + _handover_words(j)
        + (f"\n       {j['reason']}" if j["reason"] else "")
    )


def _handover_words(j: dict[str, Any]) -> str:
    """A generated seed's batch and hand-over state (nothing for other jobs)."""
    if not j.get("batch"):
        return ""
    why = f" ({j['handover_reason']})" if j.get("handover_reason") else ""
    return f"  batch {j['batch']}  handover: {j.get('handover', 'not burned yet')}{why}"
