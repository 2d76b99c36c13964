"""`tokenstation simulate`: a virtual token in a vpcd reader slot, until SIGTERM."""

from __future__ import annotations

import argparse
from pathlib import Path

from tokenstation.daemon.cli.common import EXIT_NO_READER, CliError
from tokenstation.daemon.intake.otpauth import parse_secret
from tokenstation.daemon.simulator.foreign import KINDS
from tokenstation.daemon.simulator.runner import SimulatorRunner
from tokenstation.daemon.simulator.token import (
    CLOCK_PHASES,
    PROFILES,
    Faults,
    SimulatedToken,
    default_settings,
)
from tokenstation.daemon.simulator.vpcd import SlotProblem
from tokenstation.daemon.token.crypto import TOKEN2_KEY


def port_number(text: str) -> int:
    """A TCP port (1 to 65535), or argparse's error in words."""
    import argparse

    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is no TCP port: give a number from 1 to 65535")
    return int(text)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register simulate."""
    p = sub.add_parser(
        "simulate",
        help="run a simulated token in a vsmartcard vpcd reader slot",
        description=(
            "Insert a simulated programmable token into the vpcd slot listening on PORT and "
            "keep it there until SIGTERM. It prints its display code as it changes. SIGUSR1 "
            "switches it off and on; SIGUSR2 takes it off the reader or puts it back."
        ),
    )
    p.add_argument(
        "--port",
        type=port_number,
        required=True,
        help="vpcd slot port (35963 by default in Debian)",
    )
    p.add_argument("--host", default="127.0.0.1", help="vpcd host")
    p.add_argument(
        "--model",
        choices=["single", "molto2"],
        default="single",
        help="single-profile NFC token (default) or a Token2 Molto2 (100 profiles, USB)",
    )
    p.add_argument(
        "--serial",
        help="serial; its prefix picks the model (default 86596320000001, a C302-i; "
        "58000001 with --model molto2)",
    )
    p.add_argument(
        "--clock-offset",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="token clock minus host clock at start (sub-second allowed)",
    )
    p.add_argument(
        "--drift-ppm", type=float, default=0.0, help="clock rate error in parts per million"
    )
    p.add_argument(
        "--lockout", type=int, metavar="N", help="lock for good after N failed authentications"
    )
    p.add_argument("--state-file", type=Path, metavar="F", help="keep this JSON file updated")
    sync = p.add_mutually_exclusive_group()
    sync.add_argument(
        "--restricted",
        dest="restricted",
        action="store_true",
        default=None,
        help="a clock write erases the seed (default: from the model)",
    )
    sync.add_argument(
        "--unrestricted",
        dest="restricted",
        action="store_false",
        help="a clock write keeps the seed",
    )
    p.add_argument("--seed", help="initial seed, Base32 or hex (a test token's own)")
    p.add_argument("--key", metavar="HEX", help="SM4 key it takes (default: the Token2 key)")
    p.add_argument("--algorithm", default="sha1", choices=["sha1", "sha256"])
    p.add_argument("--period", type=int, default=30, choices=[30, 60])
    p.add_argument("--display-timeout", type=int, default=30, choices=[15, 30, 60, 120])
    p.add_argument(
        "--auto-off",
        action="store_true",
        help="switch off after the display timeout, as the real token does",
    )
    p.add_argument(
        "--drop-after",
        type=int,
        metavar="K",
        help="fault: lose the field after K commands of a card session",
    )
    p.add_argument(
        "--delay", type=float, default=0.0, metavar="SECONDS", help="fault: delay every answer"
    )
    p.add_argument(
        "--delay-ins",
        type=lambda v: int(v, 16),
        metavar="HEX",
        help="with --delay: delay only answers to this INS (e.g. C5, WRITE SEED)",
    )
    p.add_argument("--refuse-all", action="store_true", help="fault: answer everything with 69 83")
    p.add_argument(
        "--firmware-profile",
        choices=list(PROFILES),
        default="token2",
        help="how the token answers: token2 (the protocol as hardware-tested hosts use it; "
        "default) or opent2otp (Token2's published firmware core: untagged GET INFO, its "
        "status words, no lockout, login kept across field loss, no range checks)",
    )
    p.add_argument(
        "--clock-phase",
        choices=list(CLOCK_PHASES),
        default="reset",
        help="on a clock write, start the written second at once (reset, default) or keep "
        "ticking on the old sub-second boundaries (keep)",
    )
    p.add_argument(
        "--foreign-card",
        nargs="?",
        const="plain",
        choices=list(KINDS),
        metavar="KIND",
        help="not a token: 'plain' (the default) refuses every command, like a bank card; "
        "'fido' is a FIDO2 security key that answers the FIDO and OATH applets' SELECTs; "
        "'oath' a key with FIDO switched off, whose OATH applet alone answers",
    )
    from tokenstation.daemon.simulator.devices import add_device_arguments

    add_device_arguments(p)
    p.set_defaults(func=cmd_simulate)


def cmd_simulate(args: argparse.Namespace) -> int:
    """Build the token from the flags and run it; a sentence when vpcd does not take it."""
    try:
        return _simulate(args)
    except SlotProblem as exc:
        raise CliError(str(exc), EXIT_NO_READER) from exc


def _simulate(args: argparse.Namespace) -> int:
    if args.foreign_card:
        from tokenstation.daemon.simulator.foreign import run_foreign

        return run_foreign(args.port, args.host, args.state_file, args.foreign_card)
    from tokenstation.daemon.simulator.devices import run_model

    ran = run_model(args.model, args)
    if ran is not None:
        return ran
    seed = parse_secret(args.seed)[0] if args.seed else None
    token = SimulatedToken(
        serial=args.serial or "86596320000001",
        restricted_sync=args.restricted,
        clock_offset_s=args.clock_offset,
        drift_ppm=args.drift_ppm,
        lockout_after=args.lockout,
        seed=seed,
        key=bytes.fromhex(args.key) if args.key else TOKEN2_KEY,
        settings=default_settings(args.algorithm, args.period, args.display_timeout),
        faults=Faults(
            drop_after=args.drop_after,
            delay_s=args.delay,
            delay_ins=args.delay_ins,
            refuse_all=args.refuse_all,
        ),
        profile=args.firmware_profile,
        clock_phase=args.clock_phase,
    )
    runner = SimulatorRunner(
        token, args.port, host=args.host, state_file=args.state_file, auto_off=args.auto_off
    )
    runner.install_signals()
    return runner.run()
