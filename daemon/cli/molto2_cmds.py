"""Token2 Molto2 on the command line: `profiles`, `delete`, `burn --profile`, `sync`, `molto2`.

The device is talked to directly, unless a running daemon holds it: then the command
goes through the daemon or is refused with the way out (:mod:`.molto2_daemon`), so the
command and the daemon never drive one Molto2 at once. It is recognised by its reader's
name, or behind vpcd by one public-data read; commands for a Molto2 refuse any other
device, and the single-profile commands hand over here only when asked for a profile or
when the device is a Molto2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenstation.daemon.cli.commands import summary
from tokenstation.daemon.cli.common import (
    EXIT_NO_READER,
    EXIT_USAGE,
    CliError,
    confirm,
    emit_json,
    utc,
)
from tokenstation.daemon.cli.molto2_daemon import FAMILY
from tokenstation.daemon.token import molto2 as m
from tokenstation.daemon.token.errors import InvalidInput, TransportError
from tokenstation.daemon.token.molto2_session import (
    Molto2Session,
    is_virtual_reader,
    molto2_drift,
    molto2_drift_words,
    profile_clock_drift,
    recognise,
)
from tokenstation.daemon.token.secret import Secret
from tokenstation.daemon.token.settings import HmacAlgorithm, TokenSettings

if TYPE_CHECKING:
    from tokenstation.daemon.families.molto2_ledger import Ledger
    from tokenstation.daemon.pcsc import PcscConnection


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register profiles, delete and molto2."""
    p = sub.add_parser(
        "profiles",
        help=summary("profiles"),
    )
    _common(p)
    p.add_argument("--all", action="store_true", help="list empty profiles too")
    p.set_defaults(func=cmd_profiles)

    p = sub.add_parser("delete", help=summary("delete"))
    _common(p)
    p.add_argument("--profile", type=int, required=True, metavar="N", help="profile 0..99")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser(
        "molto2",
        help=summary("molto2"),
    )
    _common(p)
    p.add_argument("action", choices=["change-key", "factory-reset"])
    key = p.add_mutually_exclusive_group()
    key.add_argument(
        "--new-key-file",
        metavar="FILE",
        help="change-key: read the new customer key from FILE, `-` for standard input "
        "(on a terminal without either it is asked for, not shown)",
    )
    key.add_argument(
        "--new-key",
        metavar="KEY",
        help="change-key: the new key on the command line (warns: other local users can read it)",
    )
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation here")
    p.set_defaults(func=cmd_admin)


def add_burn_args(p: argparse.ArgumentParser) -> None:
    """The Molto2 flags of `burn`."""
    p.add_argument(
        "--profile",
        metavar="N|next",
        help="Molto2: burn into profile N (0..99) or the next free one",
    )
    p.add_argument(
        "--title",
        help="Molto2: the profile's title, at most 12 bytes (default: issuer:account, cut)",
    )
    p.add_argument(
        "--digits", type=int, choices=list(m.DIGITS), help="Molto2: digits shown (default 6)"
    )
    p.add_argument("--config", type=Path, metavar="FILE", help=argparse.SUPPRESS)
    p.add_argument("--bus", choices=["session", "system"], default="session", help="daemon's bus")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reader", metavar="NAME", help="reader name (default: the one with a device)")
    p.add_argument("--json", action="store_true", help="print JSON on stdout")
    p.add_argument("--config", type=Path, metavar="FILE", help="configuration file")
    p.add_argument("--bus", choices=["session", "system"], default="session", help="daemon's bus")


def _ledger(config_path: Path | None) -> Ledger:
    from tokenstation.daemon.cli.molto2_daemon import state_dir
    from tokenstation.daemon.families.molto2_ledger import station_ledger

    return station_ledger(state_dir(config_path))


def _held(
    args: argparse.Namespace, *, molto2_only: bool = False
) -> tuple[str, dict[str, Any] | None]:
    """The reader chosen, and the daemon's presence there when it holds a Molto2.

    ``molto2_only`` (a command only a Molto2 takes): without --reader, tokens on several
    readers of which one is a Molto2 mean that one.
    """
    from tokenstation.daemon import pcsc
    from tokenstation.daemon.cli.molto2_daemon import held_molto2

    try:
        reader = pcsc.choose_reader(args.reader)
    except pcsc.NoReaderError:
        only = _the_one_molto2(args) if molto2_only and args.reader is None else None
        if only is None:
            raise
        reader = only
    return reader, held_molto2(args, reader)


def _the_one_molto2(args: argparse.Namespace) -> str | None:
    """The reader of the one Molto2 among several tokens (None: none or several).

    The daemon's view when it runs; else by reader name, and behind vpcd by the same
    one public-data read :func:`recognise` makes (real tokens are never probed).
    """
    from tokenstation.daemon import pcsc
    from tokenstation.daemon.cli.daemon_link import DaemonAbsent, daemon_call
    from tokenstation.daemon.families.views import family_name

    try:
        present: list[dict[str, Any]] = daemon_call(
            getattr(args, "bus", "session"), lambda c: c.present(), fallback=True
        )
        found = [str(p["reader"]) for p in present if family_name(p) == FAMILY]
    except DaemonAbsent:
        found = []
        for reader in pcsc.readers_with_card()[1]:
            if not (m.is_molto2_reader(reader) or is_virtual_reader(reader)):
                continue
            try:
                with pcsc.PcscConnection(reader) as conn:
                    if recognise(reader, conn):
                        found.append(reader)
            except TransportError:
                continue
    return found[0] if len(found) == 1 else None


@contextmanager
def exclusive_connection(reader: str) -> Iterator[PcscConnection]:
    """The Molto2's reader opened exclusively: while the command drives it no other
    session can start (the daemon's included), and none is running when it starts."""
    from tokenstation.daemon import pcsc

    try:
        conn = pcsc.PcscConnection(reader, exclusive=True)
    except pcsc.DeviceInUse as exc:
        raise CliError.of(
            exc,
            message=f"{exc.message}: the running daemon (or another program) is using it; "
            "nothing was sent",
            next_step="Run it again when that is done; with the daemon running, commands on a "
            "Molto2 it holds go through it.",
        ) from None
    with conn:
        yield conn


@contextmanager
def molto2_session(
    reader: str | None, config_path: Path | None = None
) -> Iterator[tuple[str, Molto2Session]]:
    """Connect to the chosen reader; refuse anything that is not a Molto2."""
    from tokenstation.daemon import pcsc
    from tokenstation.daemon.cli.molto2_daemon import customer_key

    name = pcsc.choose_reader(reader)
    key = customer_key(config_path)
    with exclusive_connection(name) as conn:
        if not recognise(name, conn):
            raise CliError(
                f"the device on {name} is not a Token2 Molto2",
                EXIT_NO_READER,
                "Profiles exist only on multi-profile tokens; nothing was written.",
            )
        yield name, Molto2Session(conn, key)


def refuse_single_profile(reader: str) -> None:
    """Single-profile commands are not sent to a Molto2 (known by its reader's name)."""
    if m.is_molto2_reader(reader):
        raise CliError(
            f"the device on {reader} is a Token2 Molto2, which holds up to 100 profiles",
            EXIT_USAGE,
            "Use `tokenstation profiles`, `burn --profile N|next` or `sync`; nothing was sent.",
        )


# -- profiles --------------------------------------------------------------------------------


def cmd_profiles(args: argparse.Namespace) -> int:
    """List every profile: index, title, seed, algorithm, digits, period, account burned."""
    from tokenstation.daemon.cli.molto2_daemon import profiles_via_daemon, show_profiles

    reader, held = _held(args, molto2_only=True)
    if held is not None:
        return profiles_via_daemon(args, held)
    drifts: dict[int, float] = {}
    with molto2_session(reader, args.config) as (reader, session):
        timed = session.read_info()
        profiles = session.read_profiles(drifts=drifts)
    serial = timed.info.serial
    burned = _ledger(args.config).accounts(serial)
    drift = molto2_drift(drifts, timed).drift_s  # the daemon's figure, computed the same
    rows = []
    for p in profiles:
        row = p.as_dict()
        row["account"] = burned.get(p.index, {}).get("account") if p.seed_present else None
        rows.append(row)
    return show_profiles(
        args,
        rows=rows,
        reader=reader,
        serial=serial,
        model="Molto2v2" if len(profiles) == m.PROFILES else "Molto2",
        token_time=timed.info.token_time,
        drift=drift,
        via_daemon=False,
    )


# -- delete ----------------------------------------------------------------------------------


def cmd_delete(args: argparse.Namespace) -> int:
    """Delete one profile's seed after confirmation (through the daemon when it holds it)."""
    from tokenstation.daemon.cli.molto2_daemon import delete_via_daemon

    m.check_profile(args.profile)
    reader, held = _held(args, molto2_only=True)
    if held is not None:
        return delete_via_daemon(args, held)
    with molto2_session(reader, args.config) as (reader, session):
        serial = session.read_info().info.serial
        before = session.read_profile(args.profile)
        if before.seed_present:
            confirm(
                f"Delete the seed of profile {args.profile}"
                f"{' (' + before.title + ')' if before.title else ''} of Molto2 {serial}? "
                "Its codes will be gone for good",
                args.yes,
            )
        deleted = session.delete(args.profile) if before.seed_present else False
    if deleted:
        _ledger(args.config).forget(serial, args.profile)
    if args.json:
        emit_json(
            {
                "ok": True,
                "reader": reader,
                "serial": serial,
                "profile": args.profile,
                "deleted": deleted,
                "title": before.title,
            }
        )
        return 0
    if deleted:
        print(f"Deleted the seed of profile {args.profile} of Molto2 {serial} (title kept).")
    else:
        print(f"Profile {args.profile} of Molto2 {serial} holds no seed; nothing to delete.")
    return 0


# -- burn ------------------------------------------------------------------------------------


def _account(args: argparse.Namespace) -> tuple[Secret, str, m.ProfileSettings]:
    """Seed, account label and settings from --uri or --secret and the flags."""
    from tokenstation.daemon.cli.secret_input import over_uri, secret_source, uri_states, warn_weak
    from tokenstation.daemon.intake.otpauth import parse_otpauth, parse_secret

    display = args.display_timeout or 30
    text, is_uri = secret_source(args)
    if is_uri:
        account = parse_otpauth(text)
        refusals = []
        if account.type != "totp":
            refusals.append("type: HOTP codes cannot be burned; a Molto2 is TOTP only")
        if account.algorithm not in ("SHA1", "SHA256"):
            refusals.append(f"algorithm: {account.algorithm} is not supported (SHA1, SHA256)")
        if account.digits not in m.DIGITS:
            refusals.append(f"digits: {account.digits} cannot be shown (4, 6, 8 or 10)")
        if account.period not in (30, 60):
            refusals.append(f"period: {account.period} s is not supported (30 or 60 s)")
        if refusals:
            raise InvalidInput(f"{account.label()} cannot be burned: " + "; ".join(refusals))
        for w in account.warnings:
            print(f"tokenstation: warning: {w}", file=sys.stderr)
        stated = uri_states(text)
        algorithm = over_uri(
            "--algorithm",
            args.algorithm and HmacAlgorithm.parse(args.algorithm),
            "algorithm" in stated,
            HmacAlgorithm.parse(account.algorithm),
            f"algorithm {account.algorithm}",
        )
        period = over_uri(
            "--period", args.period, "period" in stated, account.period, f"period {account.period}"
        )
        digits = over_uri(
            "--digits", args.digits, "digits" in stated, account.digits, f"digits {account.digits}"
        )
        settings = m.ProfileSettings(algorithm, period, digits, display)
        warn_weak(account.secret, account.label())
        return account.secret, account.label(), settings
    secret, _kind = parse_secret(text)
    warn_weak(secret, "")
    settings = m.ProfileSettings(
        HmacAlgorithm.parse(args.algorithm or "sha1"),
        args.period or 30,
        args.digits or 6,
        display,
    )
    return secret, "", settings


def _profile_arg(text: str) -> int | None:
    if text == "next":
        return None
    try:
        return m.check_profile(int(text))
    except ValueError:
        raise InvalidInput(f"--profile {text!r}: give a number 0..99 or 'next'") from None


def burn_claims(args: argparse.Namespace) -> bool:
    """Whether `burn` is a Molto2 burn: --profile given (--title and --digits without it
    are refused: they are for profiles only)."""
    if args.profile is not None:
        return True
    if args.title is not None or args.digits is not None:
        raise CliError(
            "--title and --digits are for Molto2 profiles",
            EXIT_USAGE,
            "Add --profile N (or --profile next) for a Molto2; nothing was written.",
        )
    return False


def cmd_burn(args: argparse.Namespace) -> int:
    """Burn a seed into one profile (never over a seed), verify, and say what it shows."""
    from tokenstation.daemon.cli.molto2_daemon import burn_via_daemon
    from tokenstation.daemon.provisioning.otpcode import expected_code

    wanted = _profile_arg(args.profile)
    reader, held = _held(args)
    seed, label, settings = _account(args)
    if held is not None:
        return burn_via_daemon(args, held, (seed, label, settings), wanted)
    with molto2_session(reader, args.config) as (reader, session):
        serial = session.read_info().info.serial
        profile = wanted if wanted is not None else session.next_free()
        title = args.title if args.title is not None else m.fit_title(label)
        title = title or f"Profile {profile}"
        m.title_bytes(title)
        confirm(
            f"Burn {label + ' ' if label else ''}(secret {seed.fingerprint}) into profile "
            f"{profile} of Molto2 {serial} as {title!r}?",
            args.yes,
        )
        result = session.burn(profile, seed, settings, title, expect_serial=serial)
    _ledger(args.config).record(serial, profile, label or title, seed.fingerprint)
    code, until = expected_code(
        seed, TokenSettings(settings.hmac, settings.period), result.host_time, settings.digits
    )
    if args.json:
        emit_json(
            {
                "ok": True,
                "reader": reader,
                **result.as_dict(),
                "account": label,
                "expected_code": code,
                "expected_code_valid_until": until,
            }
        )
        return 0
    print(
        f"Burned secret {seed.fingerprint}{' (' + label + ')' if label else ''} into profile "
        f"{profile} of Molto2 {serial} on {reader}, titled {title!r}."
    )
    print(
        f"Settings: {settings.hmac.name}, {settings.period} s step, {settings.digits} digits; "
        f"clock set to {utc(result.written_time)}."
    )
    print(f"Profile {profile} should show {code} until {utc(until)}.")
    return 0


# -- sync ------------------------------------------------------------------------------------


def sync_claims(args: argparse.Namespace, reader: str) -> bool:
    """Whether the device on ``reader`` may be a Molto2 for `sync`: by its reader's name;
    behind vpcd only when no single-profile settings were given (they make no sense for
    a Molto2), and then it is asked once (:func:`sync_direct`)."""
    settings_given = any((args.algorithm, args.period, args.display_timeout))
    return m.is_molto2_reader(reader) or (is_virtual_reader(reader) and not settings_given)


def refuse_direct_sync(held: dict[str, Any]) -> CliError:
    """`sync --direct` on a Molto2 the daemon holds: two sessions on one Molto2 break
    each other."""
    from tokenstation.daemon.cli.molto2_daemon import refuse_beside

    return refuse_beside(
        held,
        "a direct sync",
        "Run `tokenstation sync` without --direct: the daemon syncs it. To drive it "
        "directly, stop the daemon first.",
    )


def sync_direct(args: argparse.Namespace, reader: str) -> int | None:
    """Set the clocks of a Molto2's seeded profiles directly (time only; their settings
    stay); None when the device on ``reader`` turns out not to be a Molto2."""
    from tokenstation.daemon.cli.clock_words import untrusted_clock_reason
    from tokenstation.daemon.cli.molto2_daemon import customer_key

    key = customer_key(getattr(args, "config", None))
    with exclusive_connection(reader) as conn:
        if not recognise(reader, conn):
            return None
        session = Molto2Session(conn, key)
        serial = session.read_info().info.serial
        profiles = session.read_profiles()
        seeded = [p for p in profiles if p.seed_present]
        if args.serial and serial != args.serial:
            raise CliError(
                f"the Molto2 on {reader} is {serial}, not {args.serial}",
                EXIT_NO_READER,
                "Plug in the intended device; nothing was written.",
            )
        if seeded:
            untrusted = untrusted_clock_reason()
            question = (
                f"Set the clock of the {len(seeded)} profiles holding a seed on Molto2 {serial} "
                "(time only; their settings stay)?"
            )
            if untrusted:
                question = f"The host clock is not trusted ({untrusted}). {question}"
            confirm(question, args.yes)
        results = session.sync(profiles)
    worst = profile_clock_drift(
        {r.profile: r.drift_before_s for r in results if r.drift_before_s is not None}
    )
    left = profile_clock_drift(
        {r.profile: r.drift_after_s for r in results if r.drift_after_s is not None}
    )
    before = worst.drift_s if worst else None
    after = left.drift_s if left else None
    if args.json:
        emit_json(
            {
                "ok": True,
                "reader": reader,
                "serial": serial,
                "model": "Molto2v2" if len(profiles) == m.PROFILES else "Molto2",
                "profiles": [r.as_dict() for r in results],
                "drift_before_s": before,
                "drift_after_s": after,
                "drift_before_words": molto2_drift_words(before, precision=False),
                "drift_after_words": molto2_drift_words(after),
                "drift_resolution_s": 1,
            }
        )
        return 0
    if not results:
        print(f"No profile of Molto2 {serial} holds a seed; no clock was set.")
        return 0
    print(f"Set the clock of {len(results)} profiles of Molto2 {serial} on {reader}:")
    for r in results:
        was = molto2_drift_words(r.drift_before_s, precision=False)
        now = molto2_drift_words(r.drift_after_s, precision=False)
        print(f"  profile {r.profile:>2} {r.title:<12}  was {was}; now {now}")
    print(
        f"The largest drift was {molto2_drift_words(before, precision=False)}; now "
        f"{molto2_drift_words(after)}."
    )
    return 0


# -- administration --------------------------------------------------------------------------


def _new_key(args: argparse.Namespace) -> str:
    """The new customer key: from a file or stdin, a prompt, or (warned) the command line."""
    from tokenstation.daemon.cli.secret_input import prompt, read_one, warn_argv

    if args.new_key is not None:
        warn_argv("--new-key")
        return str(args.new_key)
    if args.new_key_file is not None:
        return read_one(args.new_key_file, "key")
    if sys.stdin.isatty():
        return prompt("New customer key, not shown: ")
    raise CliError(
        "change-key needs the new key",
        EXIT_USAGE,
        "Give it with --new-key-file FILE (`-` reads standard input); nothing was sent.",
    )


def cmd_admin(args: argparse.Namespace) -> int:
    """Key change or factory reset: confirmed here, then on the device's ▲ button."""
    if args.action == "change-key":
        new_key = m.parse_customer_key(_new_key(args))
        question = (
            "Change the Molto2's customer key? Every later session needs the new key in "
            "[molto2] customer_key; a lost key means a factory reset"
        )
    else:
        new_key = b""
        question = "Factory-reset the Molto2? Every profile, seed and title is erased"
    from tokenstation.daemon.cli.held import STOP_DAEMON
    from tokenstation.daemon.cli.molto2_daemon import refuse_beside

    reader, held = _held(args)
    if held is not None:
        raise refuse_beside(held, f"a {args.action}", f"The daemon never does this: {STOP_DAEMON}.")
    with molto2_session(reader, args.config) as (reader, session):
        serial = session.read_info().info.serial
        confirm(f"{question} (device {serial})", args.yes)
        waiting = session.change_key(new_key) if new_key else session.factory_reset()
    what = "key change" if new_key else "factory reset"
    if args.json:
        emit_json(
            {
                "ok": True,
                "reader": reader,
                "serial": serial,
                "action": args.action,
                "awaiting_button": waiting,
            }
        )
        return 0
    if waiting:
        print(f"Molto2 {serial} accepted the {what}: press ▲ on the device to confirm it.")
    else:
        print(f"Molto2 {serial} accepted the {what}.")
    return 0
