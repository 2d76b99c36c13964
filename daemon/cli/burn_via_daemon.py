"""`tokenstation burn` onto a single-profile token while a daemon runs: through it.

The account goes over in a memory-only file (never in a D-Bus message), is queued
bound to the token and burned by the daemon on its one write path (BurnAccount): under
its per-reader lock, with its station-mode rules, recorded in its registry and
provisioning log. A token the station already burned is named in the question; when
the question did not say so (the token was written meanwhile), the daemon refuses.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from tokenstation.daemon.cli.common import (
    EXIT_NO_READER,
    EXIT_USAGE,
    CliError,
    confirm,
    emit_json,
    utc,
)
from tokenstation.daemon.cli.daemon_link import DaemonAbsent, DaemonRefused, daemon_call

if TYPE_CHECKING:
    from tokenstation.daemon.token.secret import Secret
    from tokenstation.daemon.token.settings import TokenSettings


def daemon_runs(args: argparse.Namespace) -> bool:
    """Whether a daemon answers on the command's bus."""
    try:
        daemon_call(args.bus, lambda c: c.status(), fallback=True)
    except DaemonAbsent:
        return False
    return True


def _burned_before(args: argparse.Namespace, serial: str) -> str:
    """What the station's registry says was burned onto ``serial`` ("" if nothing)."""
    try:
        record: dict[str, Any] = daemon_call(args.bus, lambda c: c.token(serial))
    except DaemonRefused:  # not in the registry
        return ""
    last = record.get("last_operation") or {}
    if not record.get("provisioned") and last.get("kind") != "burn":
        return ""
    where = f" at station {last['station']}" if last.get("station") else ""
    when = f" ({last.get('detail')}, {utc(last['at'])}{where})" if last.get("at") else ""
    return f"the station's registry records token {serial} as burned before{when}"


def burn_via_daemon(
    args: argparse.Namespace,
    reader: str,
    seed: Secret,
    label: str,
    settings: TokenSettings,
) -> int:
    """Burn through the running daemon (BurnAccount); the exit code."""
    from tokenstation.daemon.cli.held import account_text, daemon_presence, send_account
    from tokenstation.daemon.families.views import SINGLE, family_name

    found = daemon_presence(args, reader)
    if found is None:
        raise CliError(
            f"the running daemon holds no token on {reader}",
            EXIT_NO_READER,
            "Switch the token on and lay it flat on the reader (`tokenstation status` shows "
            "what the daemon sees), then run it again; nothing was written.",
        )
    serial = str(found["serial"])
    if family_name(found) != SINGLE:  # a token with profiles: `burn --profile` is its burn
        raise CliError(
            f"the device on {reader} is {found.get('name_words') or serial}, which holds profiles",
            EXIT_USAGE,
            "Burn into a profile with --profile N or --profile next; nothing was written.",
        )
    before = _burned_before(args, serial)
    question = (
        f"Burn {label + ' ' if label else ''}(secret {seed.fingerprint}) onto token {serial} "
        f"with {settings.hmac.name}, {settings.period} s step, through the daemon? "
    )
    tail = (
        f"{before[0].upper()}{before[1:]}: this replaces its seed"
        if before
        else "This replaces any seed on it"
    )
    confirm(question + tail, args.yes)
    options: dict[str, Any] = {"replace": bool(before)}
    if args.display_timeout:
        options["display_timeout"] = args.display_timeout
    text = account_text(seed, label, settings.hmac, settings.period)
    done = send_account(args.bus, text, serial, options, f"token {serial}")
    return _report(args, done, seed, label)


def _report(args: argparse.Namespace, done: dict[str, Any], seed: Secret, label: str) -> int:
    job, s = done["job"], done["settings"]
    code, until = done.get("expected_code"), done.get("expected_code_valid_until")
    if args.json:
        emit_json(
            {
                "ok": True,
                "via": "daemon",
                "reader": done["reader"],
                "serial": done["serial"],
                "model": done["model"],
                "settings": s,
                "token_time": done.get("token_time"),
                "secret_fingerprint": job["secret_fingerprint"],
                "job": job["id"],
                "account": label,
                "expected_code": code,
                "expected_code_valid_until": until,
                "power_cycle_required": True,
            }
        )
        return 0
    print(
        f"Burned secret {seed.fingerprint}{' (' + label + ')' if label else ''} onto "
        f"{done['model']} token {done['serial']} on {done['reader']} (through the daemon, "
        f"job {job['id']})."
    )
    print(
        f"Settings: {str(s['hmac']).upper()}, {s['period']} s step, "
        f"{s['display_timeout']} s display."
    )
    if code:
        print(
            f"Switch the token off and on: it should show {code[:3]} {code[3:]} "
            f"until {utc(until or 0.0)}."
        )
    return 0
