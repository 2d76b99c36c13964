"""`tokenstation info | sync | burn`: one token on one reader, talked to directly."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager

from tokenstation.daemon.cli.clock_words import clock_kind_words, untrusted_clock_reason
from tokenstation.daemon.cli.commands import summary
from tokenstation.daemon.cli.common import (
    EXIT_NO_READER,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    CliError,
    confirm,
    emit_json,
    note,
    rough_drift_words,
    utc,
    warn,
)
from tokenstation.daemon.cli.direct_record import Account, Record
from tokenstation.daemon.cli.secret_input import over_uri, secret_source, uri_states, warn_weak
from tokenstation.daemon.intake.otpauth import parse_otpauth, parse_secret, require_burnable
from tokenstation.daemon.provisioning.otpcode import expected_code
from tokenstation.daemon.token.errors import InvalidInput
from tokenstation.daemon.token.models import Model
from tokenstation.daemon.token.secret import Secret
from tokenstation.daemon.token.session import (
    ClockKind,
    Identification,
    TokenSession,
    WriteResult,
    describe_drift,
)
from tokenstation.daemon.token.settings import HmacAlgorithm, TokenSettings


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register info (sync and burn: their verb modules, sync_cmd and burn_cmd)."""
    p = sub.add_parser("info", help=summary("info"))
    reader_args(p)
    p.add_argument("--quick", action="store_true", help="one read: whole-second drift only")
    p.set_defaults(func=cmd_info)


def reader_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--reader", metavar="NAME", help="reader name (default: the one holding a token)"
    )
    p.add_argument("--json", action="store_true", help="print JSON on stdout")


def settings_args(p: argparse.ArgumentParser, *, required_note: bool) -> None:
    note = " (the token cannot report it: give what it was burned with)" if required_note else ""
    p.add_argument("--algorithm", choices=["sha1", "sha256"], type=str.lower, help="HMAC" + note)
    p.add_argument("--period", type=int, choices=[30, 60], help="time step in seconds" + note)
    p.add_argument(
        "--display-timeout",
        type=int,
        choices=[15, 30, 60, 120],
        help="seconds the display stays on" + note,
    )


@contextmanager
def token_session(reader: str | None) -> Iterator[tuple[str, TokenSession]]:
    """Connect to the chosen reader and yield a session on it."""
    from tokenstation.daemon import pcsc

    name = pcsc.choose_reader(reader)
    from tokenstation.daemon.cli.families import refuse_other_families

    refuse_other_families(name)
    with pcsc.PcscConnection(name) as conn:
        yield name, TokenSession(conn)


def _model_words(model: Model) -> str:
    if not model.programmable:
        return "not programmable by tokenstation (unknown serial prefix): read-only"
    if model.restricted_sync:
        return "programmable; setting its clock erases the seed (re-burn needed)"
    return "programmable; its clock can be set without losing the seed"


def cmd_info(args: argparse.Namespace) -> int:
    """Identify the token and measure its drift."""
    with token_session(args.reader) as (reader, session):
        ident = session.identify(precise=not args.quick)
    if args.json:
        emit_json({"ok": True, "reader": reader, **ident.as_dict()})
        return 0
    _print_identification(reader, ident)
    return 0


def _print_identification(reader: str, ident: Identification) -> None:
    d = ident.drift
    print(f"Reader:  {reader}")
    print(f"Serial:  {ident.serial}")
    print(f"Model:   {ident.model.name} ({_model_words(ident.model)})")
    print(f"Token:   {utc(ident.token_time)}")
    print(f"Host:    {utc(ident.host_time, 1)}")
    if d.method == "single-read":  # whole seconds only (--quick)
        print(f"Drift:   {rough_drift_words(d.drift_s).replace('first read', 'one read')}")
    else:
        print(f"Drift:   {describe_drift(d.drift_s)} (±{d.uncertainty_s:.3f} s, {d.reads} reads)")
    print(f"Answer:  {_FORM_WORDS[ident.info_form.value]}")


_FORM_WORDS = {
    "tagged": "tagged GET INFO (95 LL 02 ... 11 04 ...)",
    "untagged": "untagged GET INFO (00 00 00 ... 00 00 ..., as Token2's published firmware core)",
}


def _settings_from_args(args: argparse.Namespace, defaults: TokenSettings | None) -> TokenSettings:
    """Settings from the flags; with no defaults (sync) every one must be given."""
    hmac = HmacAlgorithm.parse(args.algorithm) if args.algorithm else None
    period: int | None = args.period
    display: int | None = args.display_timeout
    if defaults is None:
        flags = ("--algorithm", "--period", "--display-timeout")
        missing = [f for f, v in zip(flags, (hmac, period, display), strict=True) if v is None]
        if missing:
            raise CliError(
                "the token's HMAC, time step and display timeout cannot be read back, and a clock "
                f"write rewrites them all: missing {', '.join(missing)}",
                EXIT_USAGE,
                "Give the values the token was burned with; nothing was written.",
            )
        defaults = TokenSettings()
    return TokenSettings(
        hmac=hmac or defaults.hmac,
        period=period or defaults.period,
        display_timeout=display or defaults.display_timeout,
    )


def sync_direct(args: argparse.Namespace) -> int:
    """Set a single-profile token's clock through the reader, refusing where it would
    erase the seed (the `sync` verb, ``sync_cmd``, decided it goes here)."""
    settings = _settings_from_args(args, None)
    from tokenstation.daemon.cli.direct_record import direct_record

    with (
        token_session(args.reader) as (reader, session),
        direct_record(args.config, beside_daemon=True) as record,  # before any write
    ):
        ident = session.identify()
        if args.serial and ident.serial != args.serial:
            raise CliError(
                f"the token on {reader} is {ident.serial}, not {args.serial}",
                EXIT_NO_READER,
                "Place the intended token; nothing was written.",
            )
        if ident.model.programmable and not ident.model.restricted_sync:
            untrusted = untrusted_clock_reason()
            question = (
                f"Set the clock of {ident.model.name} token {ident.serial} "
                f"({ident.drift.describe()}) with {settings.hmac.name}, {settings.period} s step, "
                f"{settings.display_timeout} s display?"
            )
            if untrusted:
                question = (
                    f"The host clock is not trusted ({untrusted}). {question[:-1]} from it anyway?"
                )
            confirm(question, args.yes)
        result = session.set_clock(
            settings,
            expect_serial=ident.serial,
            clock_kind=ClockKind.parse(args.clock_kind),
            before=ident.drift,
        )
        record.synced(reader, ident, result, settings)
    _report_write(args, reader, result, before=ident)
    return 0


def direct_instead(args: argparse.Namespace, absent: str, start: str) -> None:
    """No daemon: go to the reader directly, saying so; refuse when settings are missing."""
    given = (args.algorithm, args.period, args.display_timeout)
    if any(v is not None for v in given):  # meant for the reader: checked there
        note(f"{absent}; setting the clock directly through the reader")
        return
    raise CliError(
        f"{absent}, so the settings this station wrote are not at hand (the token cannot "
        "report its HMAC, time step and display timeout)",
        EXIT_UNAVAILABLE,
        f"{start} Or give --algorithm, --period and --display-timeout as the token was "
        "burned. Nothing was written.",
    )


def _secret_from_args(args: argparse.Namespace) -> tuple[Secret, Account, TokenSettings]:
    text, is_uri = secret_source(args)
    if is_uri:
        account = parse_otpauth(text)
        require_burnable(account)
        for w in account.warnings:
            warn(w)
        stated = uri_states(text)
        hmac = over_uri(
            "--algorithm",
            args.algorithm and HmacAlgorithm.parse(args.algorithm),
            "algorithm" in stated,
            HmacAlgorithm.parse(account.algorithm),
            f"algorithm {account.algorithm}",
        )
        period = over_uri(
            "--period", args.period, "period" in stated, account.period, f"period {account.period}"
        )
        base = TokenSettings(hmac, period)
        who = Account(account.issuer, account.account)
        warn_weak(account.secret, who.label())
        return account.secret, who, _settings_from_args(args, base)
    secret, kind = parse_secret(text)
    if not 1 <= len(secret) <= 63:
        raise InvalidInput(
            f"the {kind} secret is {len(secret)} bytes; these tokens hold 1 to 63 bytes"
        )
    warn_weak(secret, "")
    return secret, Account(), _settings_from_args(args, TokenSettings())


def burn(args: argparse.Namespace) -> int:
    """Burn a seed with its settings and the host's time onto a single-profile token:
    through the running daemon when there is one, else directly, recorded as the daemon
    records its burns (the `burn` verb, ``burn_cmd``, decided it goes here)."""
    from tokenstation.daemon.cli.burn_via_daemon import burn_via_daemon, daemon_runs
    from tokenstation.daemon.cli.direct_record import direct_record, record_failure

    seed, who, settings = _secret_from_args(args)
    label = who.label()
    if daemon_runs(args):
        from tokenstation.daemon import pcsc

        return burn_via_daemon(args, pcsc.choose_reader(args.reader), seed, label, settings)
    with (
        token_session(args.reader) as (reader, session),
        direct_record(args.config, beside_daemon=False) as record,  # before any write
    ):
        info = session.read_first().info
        confirm(
            f"Burn {label + ' ' if label else ''}(secret {seed.fingerprint}) onto token "
            f"{info.serial} with {settings.hmac.name}, {settings.period} s step? "
            + _burned_words(record, info.serial),
            args.yes,
        )
        try:
            result = session.burn(seed, settings)
        except BaseException as exc:
            record_failure(record, info.serial, _model_name(info.serial), seed, exc)
            raise
        record.burned(reader, result, settings, seed, who)
    code, valid_until = expected_code(seed, settings, result.host_time_after)
    if args.json:
        emit_json(
            {
                "ok": True,
                "reader": reader,
                **result.as_dict(),
                "account": label,
                "expected_code": code,
                "expected_code_valid_until": valid_until,
                "power_cycle_required": True,
            }
        )
        return 0
    print(
        f"Burned secret {seed.fingerprint}{' (' + label + ')' if label else ''} onto "
        f"{result.model.name} token {result.serial} on {reader}."
    )
    print(
        f"Settings: {settings.hmac.name}, {settings.period} s step, "
        f"{settings.display_timeout} s display."
    )
    print(f"Clock set to {utc(result.written_time)}; read back {utc(result.token_time_after)}.")
    print(
        f"Switch the token off and on: it should show {code[:3]} {code[3:]} "
        f"until {utc(valid_until)}."
    )
    return 0


def _burned_words(record: Record, serial: str) -> str:
    """The end of a burn's question: what the station's registry says of ``serial``."""
    known = record.store.token(serial)
    burns = [op for op in record.store.operations(serial) if op.kind == "burn"]
    if not (known and known.provisioned) and not burns:
        return "This replaces any seed on it"
    last = f" (last: {burns[-1].detail}, {utc(burns[-1].at)})" if burns else ""
    return f"The station's registry records it as burned before{last}: this replaces its seed"


def _model_name(serial: str) -> str:
    """The model's name by the serial, for a failure's record ("" when unknown)."""
    from tokenstation.daemon.token.models import ModelTable

    try:
        return ModelTable().lookup(serial).name
    except Exception:
        return ""


def _report_write(
    args: argparse.Namespace, reader: str, result: WriteResult, before: Identification
) -> None:
    if args.json:
        emit_json(
            {
                "ok": True,
                "reader": reader,
                **result.as_dict(),
                "drift_before_s": round(before.drift.drift_s, 1),
            }
        )
        return
    after = (
        f"; now {result.residual.describe()} (±{result.residual.uncertainty_s:.3f} s)"
        if result.residual
        else ""
    )
    print(
        f"Set the clock of {result.model.name} token {result.serial} on {reader}: it was "
        f"{before.drift.describe()}{after}."
    )
    print(_clock_kind_words(result))


def _clock_kind_words(result: WriteResult) -> str:
    """One line on what the token's clock did with the write."""
    return clock_kind_words(
        result.clock_kind.value, result.clock_writes, "Next time: --clock-kind phase-keeping."
    )
