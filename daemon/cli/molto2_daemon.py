"""The Molto2 commands beside a running daemon: the command and the daemon never drive
one Molto2 at once (its challenge/auth is per session, so a second session breaks the
first).

Before a Molto2 command opens the reader it asks the daemon (if one runs) what it holds
on that reader. A Molto2 the daemon holds is answered from the daemon (`profiles`: its
presence and this station's ledger, no card access), changed through it (`delete`:
DeleteProfile, on the daemon's one write path; `burn --profile`: BurnAccount, the account
in a memory-only file), or refused with the way out (`sync --direct`, `molto2
change-key|factory-reset`). While the daemon is
still reading a device placed a moment ago, the command waits for it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenstation.daemon.cli.common import (
    EXIT_NO_READER,
    EXIT_REFUSED,
    CliError,
    confirm,
    emit_json,
    utc,
)
from tokenstation.daemon.cli.daemon_link import DaemonRefused, daemon_call
from tokenstation.daemon.cli.held import STOP_DAEMON, account_text, daemon_presence, send_account
from tokenstation.daemon.families import molto2_settings
from tokenstation.daemon.families.views import family_name

if TYPE_CHECKING:
    from tokenstation.daemon.config import Config
    from tokenstation.daemon.token.molto2 import ProfileSettings
    from tokenstation.daemon.token.secret import Secret

#: This family's name in the daemon's views (``families/molto2.py``).
FAMILY = "molto2"


def _config(config_path: Path | None) -> Config:
    from tokenstation.daemon import config

    try:
        return config.load(config_path, required=config_path is not None)
    except config.ConfigError as exc:
        raise CliError.of(exc, "Fix the configuration file.") from None


def customer_key(config_path: Path | None) -> bytes:
    """The configured customer key ([molto2] customer_key; default Token2's factory key)."""
    return molto2_settings.customer_key(_config(config_path))


def state_dir(config_path: Path | None) -> Path | None:
    """The configured state folder (None: the XDG one), where the ledger is."""
    return _config(config_path).state_dir


def held_molto2(args: argparse.Namespace, reader: str) -> dict[str, Any] | None:
    """The daemon's presence of the Molto2 on ``reader`` it holds (None: not held).

    A single-profile token the daemon holds there is refused as the direct path would.
    """
    found = daemon_presence(args, reader)
    if found is None:
        return None
    if family_name(found) != FAMILY:
        raise CliError(
            f"the device on {reader} is token {found.get('serial')} ({found.get('model')}), "
            "not a Token2 Molto2",
            EXIT_NO_READER,
            "Profiles exist only on multi-profile tokens; nothing was written.",
        )
    return found


def refuse_beside(found: dict[str, Any], what: str, way_out: str) -> CliError:
    """A command that would drive the Molto2 the daemon holds: exit 4 and the way out."""
    return CliError(
        f"the running daemon holds Molto2 {found['serial']} on {found['reader']}: {what} "
        "beside it could break its session (nothing was sent)",
        EXIT_REFUSED,
        way_out,
    )


def _rows(found: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    """The presence's profiles with this station's ledger (unreadable here: unknown)."""
    from tokenstation.daemon.families.molto2_ledger import station_ledger

    try:
        burned = station_ledger(state_dir(args.config)).accounts(found["serial"])
    except OSError:  # the daemon's own state folder (a station's): accounts unknown here
        burned = {}
    rows = []
    for p in found.get("profiles", []):
        row = {k: p[k] for k in ("profile", "title", "seed_present", "hmac", "period", "digits")}
        row["account"] = burned.get(p["profile"], {}).get("account") if p["seed_present"] else None
        rows.append(row)
    return rows


def profiles_via_daemon(args: argparse.Namespace, found: dict[str, Any]) -> int:
    """`profiles` answered from the daemon's presence (no card access)."""

    drift = float(found.get("drift_s", 0.0))
    return show_profiles(
        args,
        rows=_rows(found, args),
        reader=found["reader"],
        serial=found["serial"],
        model=found.get("model"),
        token_time=found.get("token_time"),
        drift=drift,
        via_daemon=True,
    )


def show_profiles(
    args: argparse.Namespace,
    *,
    rows: list[dict[str, Any]],
    reader: str,
    serial: str,
    model: str | None,
    token_time: float | None,
    drift: float,
    via_daemon: bool,
) -> int:
    """`profiles`' report (text or --json), read from the card or from the daemon."""
    from tokenstation.daemon.token.molto2_session import molto2_drift_words

    free = [r["profile"] for r in rows if not r["seed_present"]]
    if args.json:
        emit_json(
            {
                "ok": True,
                **({"via": "daemon"} if via_daemon else {}),
                "reader": reader,
                "serial": serial,
                "model": model,
                "token_time": token_time,
                "drift_s": round(drift),
                "drift_words": molto2_drift_words(drift),
                "free": len(free),
                "next_free": free[0] if free else None,
                # As the listing: the profiles holding a seed, every one with --all.
                "profiles": [r for r in rows if listed(r, args.all)],
            }
        )
        return 0
    via = " (via the daemon)" if via_daemon else ""
    print(f"Molto2 {serial} on {reader}{via}: {len(rows)} profiles, {len(free)} free")
    if token_time is not None:
        seen = ", as the daemon last read it" if via_daemon else ""
        print(f"Clock: {molto2_drift_words(drift)}; device clock {utc(token_time)}{seen}")
    print_rows(rows, args.all)
    print(f"Next free profile: {free[0]}" if free else "No free profile.")
    return 0


def listed(row: dict[str, Any], every: bool) -> bool:
    """Whether `profiles` shows this profile: one holding a seed or a title, any with --all."""
    return every or bool(row["seed_present"] or row["title"])


def print_rows(rows: list[dict[str, Any]], every: bool) -> None:
    """The profile table (empty, untitled profiles only with ``every``)."""
    print(f"{'#':>3}  {'title':<12}  seed  algo    digits  period  burned here")
    for r in rows:
        if not listed(r, every):
            continue
        print(
            f"{r['profile']:>3}  {r['title']:<12}  {'yes' if r['seed_present'] else 'no ':<4}  "
            f"{str(r['hmac']).upper():<6}  {r['digits']:>6}  {r['period']:>4} s  "
            f"{r['account'] or ''}"
        )


def delete_via_daemon(args: argparse.Namespace, found: dict[str, Any]) -> int:
    """`delete --profile N` through the daemon (DeleteProfile), after the confirmation."""
    serial, reader, n = found["serial"], found["reader"], args.profile
    profile = next((p for p in found.get("profiles", []) if p["profile"] == n), None)
    if profile is None:
        raise CliError(
            f"Molto2 {serial} has no profile {n}",
            EXIT_NO_READER,
            "Give a profile shown by `tokenstation profiles`; nothing was deleted.",
        )
    title = str(profile["title"])
    deleted = False
    if profile["seed_present"]:
        confirm(
            f"Delete the seed of profile {n}{' (' + title + ')' if title else ''} of Molto2 "
            f"{serial}? Its codes will be gone for good",
            args.yes,
        )
        try:
            done = daemon_call(args.bus, lambda c: c.delete_profile(serial, n))
        except DaemonRefused as exc:
            raise DaemonRefused(exc.kind, f"Molto2 {serial}: {exc}", exc.next_step) from None
        deleted = bool(done.get("deleted"))
    if args.json:
        emit_json(
            {
                "ok": True,
                "via": "daemon",
                "reader": reader,
                "serial": serial,
                "profile": n,
                "deleted": deleted,
                "title": title,
            }
        )
        return 0
    if deleted:
        print(
            f"Deleted the seed of profile {n} of Molto2 {serial} (title kept), through the daemon."
        )
    else:
        print(f"Profile {n} of Molto2 {serial} holds no seed; nothing to delete.")
    return 0


def burn_via_daemon(
    args: argparse.Namespace,
    found: dict[str, Any],
    account: tuple[Secret, str, ProfileSettings],
    wanted: int | None,
) -> int:
    """`burn --profile N|next` through the daemon (BurnAccount): the account goes over in
    a memory-only file (never in a D-Bus message), is queued bound to this Molto2 and
    burned by the daemon into that profile; never over a seed."""

    from tokenstation.daemon.token import molto2 as m

    seed, label, settings = account
    serial, reader = found["serial"], found["reader"]
    if settings.digits != 6 or args.display_timeout:
        raise refuse_beside(
            found,
            "a burn with its own digits or display timeout",
            "Through the daemon a profile shows 6 digits and keeps the daemon's display "
            f"timeout; for other settings, {STOP_DAEMON}.",
        )
    profiles = {p["profile"]: p for p in found.get("profiles", [])}
    if wanted is not None and profiles.get(wanted, {}).get("seed_present"):
        held_title = profiles[wanted]["title"]
        raise CliError(
            f"profile {wanted} of Molto2 {serial} already holds a seed"
            + (f" ({held_title})" if held_title else "")
            + "; it was not touched",
            EXIT_REFUSED,
            "Choose a free profile (--profile next), or delete this profile's seed first with "
            "`tokenstation delete --profile N` if it is really no longer needed.",
        )
    where = (
        f"profile {wanted}"
        if wanted is not None
        else f"the next free profile ({found.get('next_free_profile')} now)"
    )
    shown = args.title if args.title is not None else m.fit_title(label)
    confirm(
        f"Burn {label + ' ' if label else ''}(secret {seed.fingerprint}) into {where} of "
        f"Molto2 {serial}{' as ' + repr(shown) if shown else ''}, through the daemon?",
        args.yes,
    )
    options: dict[str, Any] = {}
    if wanted is not None:
        options["profile"] = wanted
    if args.title is not None:
        options["title"] = args.title
    text = account_text(
        seed, label or (args.title or ""), settings.hmac, settings.period, settings.digits
    )
    done = send_account(args.bus, text, serial, options, f"Molto2 {serial}")
    job = done["job"]
    profile = int(job["profile"])
    title = args.title if args.title is not None else (m.fit_title(label) or f"Profile {profile}")
    code, until = done.get("expected_code"), done.get("expected_code_valid_until")
    if args.json:
        emit_json(
            {
                "ok": True,
                "via": "daemon",
                "reader": reader,
                "serial": serial,
                "profile": profile,
                "title": title,
                "settings": {**done["settings"], "digits": settings.digits},
                "written_time": done["token_time"],
                "secret_fingerprint": job["secret_fingerprint"],
                "account": label,
                "expected_code": code,
                "expected_code_valid_until": until,
            }
        )
        return 0
    print(
        f"Burned secret {seed.fingerprint}{' (' + label + ')' if label else ''} into profile "
        f"{profile} of Molto2 {serial} on {reader}, titled {title!r} (through the daemon)."
    )
    s = done["settings"]
    print(
        f"Settings: {str(s['hmac']).upper()}, {s['period']} s step, {settings.digits} digits; "
        f"clock set to {utc(done['token_time'])}."
    )
    if code:
        print(f"Profile {profile} should show {code} until {utc(until or 0.0)}.")
    return 0
