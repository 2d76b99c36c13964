"""`tokenstation lab`: a private station to explore from another shell, until Ctrl-C.

The demo's station (a private pcscd with vpcd readers, a private D-Bus with
systemd-timedated, the real daemon, all homed in a temporary folder) with simulated
tokens placed as asked; it prints the environment lines that point another shell's
`tokenstation` at it, and on Ctrl-C or SIGTERM takes everything down again.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Protocol

from tokenstation.daemon.cli.commands import summary
from tokenstation.daemon.cli.common import EXIT_FAILED, EXIT_OK, CliError
from tokenstation.daemon.cli.demo import DEMO_SEED, start_station
from tokenstation.daemon.token.models import BUILTIN_MODELS

if TYPE_CHECKING:
    from tokenstation.daemon.simulator.stations import SiteParts

#: What another shell needs to reach the lab's pcscd, bus, daemon and files.
ENV_KEYS = (
    "PCSCLITE_CSOCK_NAME",
    "DBUS_SESSION_BUS_ADDRESS",
    "DBUS_SYSTEM_BUS_ADDRESS",
    "XDG_CONFIG_HOME",
    "XDG_STATE_HOME",
    "XDG_DATA_HOME",
    "XDG_CACHE_HOME",
)
SINGLE_KINDS = {m.name.lower(): m for m in BUILTIN_MODELS}
KINDS = (*SINGLE_KINDS, "molto2", "fido")


@dataclass(frozen=True)
class TokenSpec:
    """One `--token KIND[:OFFSET]`."""

    kind: str
    offset: float = 0.0

    def describe(self) -> str:
        """How the token is shown in the lab's listing."""
        if self.kind == "fido":
            return "a FIDO2 security key (not a token)"
        name = "Molto2" if self.kind == "molto2" else SINGLE_KINDS[self.kind].name
        if not self.offset:
            return f"{name}, clock right"
        return f"{name}, clock {abs(self.offset):g} s {'fast' if self.offset > 0 else 'slow'}"


DEFAULT_TOKENS = (TokenSpec("c302-i", 37.4), TokenSpec("molto2", -4.2))


def parse_token(text: str) -> TokenSpec:
    """`c302-i`, `otpc-p2-i:-12.8`, `molto2:3`, `fido` (argparse type)."""
    kind, _, offset = text.strip().lower().partition(":")
    if kind not in KINDS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is no token kind this lab simulates; use one of {', '.join(KINDS)}, "
            "optionally with :SECONDS of clock offset (e.g. c302-i:37.4)"
        )
    if not offset:
        return TokenSpec(kind)
    if kind == "fido":
        raise argparse.ArgumentTypeError("a FIDO key has no clock to offset; give just 'fido'")
    try:
        return TokenSpec(kind, float(offset))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{offset!r} in {text!r} is not a number of seconds (e.g. c302-i:-12.8)"
        ) from None


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register lab."""
    p = sub.add_parser(
        "lab",
        help=summary("lab"),
        description="Start a private pcscd with virtual readers, a private D-Bus and the "
        "daemon (nothing on the host is touched), place simulated tokens, and print the "
        "lines that point another shell's tokenstation at them. Ctrl-C stops it all.",
    )
    p.add_argument(
        "--token",
        action="append",
        type=parse_token,
        metavar="KIND[:SECONDS]",
        help="a simulated token, one per reader, repeatable: "
        f"{', '.join(KINDS)}; SECONDS is its clock offset (negative: slow). "
        "Default: c302-i:37.4 and molto2:-4.2",
    )
    p.set_defaults(func=cmd_lab)


class Placed(Protocol):
    """A simulated token kept on a reader (the simulator's runners)."""

    def place(self, timeout: float = ...) -> None: ...
    def run(self) -> int: ...
    def stop(self) -> None: ...


class _FidoKey:
    """A FIDO2 key on a reader: nothing to run, nothing to show."""

    def __init__(self, port: int) -> None:
        from tokenstation.daemon.simulator.foreign import FOREIGN_HISTORICAL_BYTES, ForeignCard
        from tokenstation.daemon.simulator.vpcd import VpcdLink, contactless_atr

        card = ForeignCard("fido")
        self.link = VpcdLink(card, contactless_atr(FOREIGN_HISTORICAL_BYTES), port)
        self._stop = threading.Event()

    def place(self, timeout: float = 5.0) -> None:
        self.link.place(timeout)

    def run(self) -> int:
        self._stop.wait()
        self.link.remove()
        return 0

    def stop(self) -> None:
        self._stop.set()


def _serial(spec: TokenSpec, n: int) -> str:
    """The serial of token ``n``: its model's prefix and the reader's number."""
    from tokenstation.daemon.simulator.devices import lab_serial

    return lab_serial(spec.kind, n) or f"{SINGLE_KINDS[spec.kind].prefix}{417 + n:07d}"


def _runner(spec: TokenSpec, n: int, port: int, folder: Path) -> Placed:
    """The simulator runner of token ``n`` (its display log and state file in ``folder``)."""
    from tokenstation.daemon.intake.otpauth import parse_secret
    from tokenstation.daemon.simulator.devices import lab_runner
    from tokenstation.daemon.simulator.runner import SimulatorRunner
    from tokenstation.daemon.simulator.token import SimulatedToken

    if spec.kind == "fido":
        return _FidoKey(port)
    seed = parse_secret(DEMO_SEED)[0]
    out = (folder / f"{n}-{spec.kind}.log").open("a", buffering=1)
    state = folder / f"{n}-{spec.kind}.json"
    device = lab_runner(spec.kind, n, spec.offset, port, seed=seed, state=state, out=out)
    if device is not None:
        return device
    token = SimulatedToken(serial=_serial(spec, n), clock_offset_s=spec.offset, seed=seed)
    return SimulatorRunner(token, port, state_file=state, out=out)


def _interrupt(_sig: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def cmd_lab(args: argparse.Namespace) -> int:
    """Run the lab until Ctrl-C or SIGTERM; everything it started is stopped."""
    specs: list[TokenSpec] = args.token or list(DEFAULT_TOKENS)
    signal.signal(signal.SIGTERM, _interrupt)
    work = Path(tempfile.mkdtemp(prefix="tokenstation-lab-"))
    work.chmod(0o700)
    keep = False
    try:
        print("tokenstation lab: starting a private pcscd, D-Bus and daemon ...", flush=True)
        # One spare reader, for a token of your own (`tokenstation simulate --port P`).
        try:
            parts = start_station(work, "lab", readers=len(specs) + 1)
        except RuntimeError as exc:  # the daemon did not start: its log says why
            keep = True
            raise CliError(str(exc), EXIT_FAILED, f"Its log stays in {work}.") from None
        try:
            keep = _serve(parts, specs, work)
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            parts.close()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    if keep:
        print(f"The lab stopped because the daemon did; its log is in {work}.")
        return EXIT_FAILED
    print("tokenstation lab stopped: pcscd, D-Bus, daemon and tokens are gone.")
    return EXIT_OK


def _serve(parts: SiteParts, specs: list[TokenSpec], work: Path) -> bool:
    """Place the tokens, print the lines, wait for Ctrl-C; True if the daemon died."""
    folder = work / "tokens"
    folder.mkdir()
    runners: list[Placed] = []
    threads: list[threading.Thread] = []
    try:
        print()
        for n, spec in enumerate(specs):
            runner = _runner(spec, n, parts.stack.port(n), folder)
            runners.append(runner)
            try:
                runner.place()
            except RuntimeError as exc:
                raise CliError(f"could not place {spec.kind} on reader {n}: {exc}") from exc
            thread = threading.Thread(target=runner.run, name=f"lab-token-{n}", daemon=True)
            thread.start()
            threads.append(thread)
            serial = "" if spec.kind == "fido" else f" {_serial(spec, n)}"
            print(f"  {parts.stack.reader_name(n)}:{serial} {spec.describe()}")
        for n, spec in enumerate(specs):
            if spec.kind != "fido":
                parts.wait_log(_serial(spec, n), 10)
        spare = len(specs)
        print(
            f"  {parts.stack.reader_name(spare)}: free; `tokenstation simulate --port "
            f"{parts.stack.port(spare)} ...` places a token of your own there"
        )
        print("\nIn another shell, paste these lines:\n")
        for key in ENV_KEYS:
            print(f"export {key}={shlex.quote(parts.env[key])}")
        print(
            "\nthen try: tokenstation status; tokenstation info --reader "
            f"{shlex.quote(parts.stack.reader_name(0))}; tokenstation tokens; "
            "tokenstation profiles; tokenstation queue list"
        )
        print(
            f"Logs: the daemon's in {parts.log_path}, each token's display in {folder}.\n"
            "Ctrl-C stops everything.",
            flush=True,
        )
        while parts.daemon is not None and parts.daemon.poll() is None:
            time.sleep(0.2)
        print(f"\nThe daemon stopped (exit {parts.daemon.returncode if parts.daemon else '?'}).")
        return True
    finally:
        for runner in runners:
            runner.stop()
        for thread in threads:
            thread.join(5)
