"""`tokenstation simulate --model molto2`: a simulated Molto2 in a vpcd slot until SIGTERM.

SIGUSR1 presses the up-arrow button (commits a pending key change or factory reset);
SIGUSR2 pulls the device out of the USB port or plugs it back in. The state file
lists every profile (title, seed fingerprint, settings, clock offset, code).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TextIO

from tokenstation.daemon.intake.otpauth import parse_secret
from tokenstation.daemon.simulator.molto2 import Molto2Faults, SimulatedMolto2
from tokenstation.daemon.simulator.runner import REINSERT_DELAY_S, write_json_atomic
from tokenstation.daemon.simulator.vpcd import PLACE_TIMEOUT_S, VpcdLink, contactless_atr
from tokenstation.daemon.token import molto2 as m
from tokenstation.daemon.token.errors import InvalidInput
from tokenstation.daemon.token.settings import HmacAlgorithm

#: ATR historical bytes of the simulated device. Made up: the real Molto2's ATR is not known.
MOLTO2_HISTORICAL_BYTES = b"TS-MOLTO2"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The Molto2-only flags of `simulate` (the shared ones stay in simulate.py)."""
    g = p.add_argument_group(
        "with --model molto2",
        "A Molto2v2 with 100 profiles (USB). SIGUSR1 presses its ▲ button (confirms a key "
        "change or factory reset); SIGUSR2 pulls it out or plugs it back in. --drop-after K "
        "pulls it once after K APDUs. --algorithm, --period, --display-timeout and --digits "
        "apply to the --profile-seed profiles.",
    )
    g.add_argument(
        "--profiles", type=int, default=m.PROFILES, choices=[50, 100], help="profile count"
    )
    g.add_argument(
        "--customer-key",
        default=m.DEFAULT_CUSTOMER_KEY.decode(),
        metavar="KEY",
        help="customer key it takes (ASCII, or hex:...; default Token2's factory key)",
    )
    g.add_argument(
        "--profile-seed",
        action="append",
        default=[],
        metavar="N:SECRET[:TITLE]",
        help="a seed already on profile N (Base32 or hex); repeatable",
    )
    g.add_argument(
        "--digits", type=int, default=6, choices=list(m.DIGITS), help="for --profile-seed"
    )
    g.add_argument(
        "--auto-confirm",
        action="store_true",
        help="press the up-arrow button at once for key change and factory reset",
    )
    g.add_argument(
        "--attempts", type=int, default=10, help="authentication attempts before it locks"
    )
    g.add_argument(
        "--clock-ignores-writes",
        action="store_true",
        help="fault: config and sync writes answer 90 00 but no profile clock moves",
    )


def build(args: argparse.Namespace) -> SimulatedMolto2:
    """The simulated device from the parsed `simulate` flags."""
    device = SimulatedMolto2(
        serial=args.serial or "58000001",
        profiles=args.profiles,
        customer_key=m.parse_customer_key(args.customer_key),
        clock_offset_s=args.clock_offset,
        drift_ppm=args.drift_ppm,
        attempts=args.attempts,
        auto_confirm=args.auto_confirm,
        clock_ignores_writes=args.clock_ignores_writes,
        faults=Molto2Faults(drop_after=args.drop_after, delay_s=args.delay),
    )
    settings = m.ProfileSettings(
        HmacAlgorithm.parse(args.algorithm), args.period, args.digits, args.display_timeout
    )
    for spec in args.profile_seed:
        index, _, rest = spec.partition(":")
        secret, _, title = rest.partition(":")
        if not index.isdigit() or not secret:
            raise InvalidInput(f"--profile-seed {index}:...: expected N:SECRET[:TITLE]")
        if int(index) >= device.profiles:
            raise InvalidInput(
                f"--profile-seed {index}:...: this Molto2 has profiles 0 to "
                f"{device.profiles - 1} (--profiles {device.profiles}); give a profile "
                "within them"
            )
        device.preload(int(index), parse_secret(secret)[0], settings, title)
    return device


class Molto2Runner:
    """Keeps the simulated device plugged into a vpcd slot until stopped."""

    def __init__(
        self,
        device: SimulatedMolto2,
        port: int,
        *,
        host: str = "127.0.0.1",
        state_file: Path | None = None,
        out: TextIO = sys.stdout,
    ) -> None:
        self.device = device
        self.link = VpcdLink(
            device, contactless_atr(MOLTO2_HISTORICAL_BYTES), port, host, self._pulled
        )
        self.state_file = state_file
        self.out = out
        self._stop = threading.Event()
        self._want_plugged = True
        self._replug_after = 0.0
        self._last: tuple[object, ...] = ()
        self._button = threading.Event()

    def _say(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S", time.gmtime(self.device.clock.now()))
        self.out.write(f"{stamp}  {text}\n")
        self.out.flush()

    def _pulled(self) -> None:
        self.device.unplugged()
        if self._want_plugged and not self._stop.is_set():
            self._want_plugged = False
            self._say("device pulled from the port; SIGUSR2 plugs it back in")

    def install_signals(self) -> None:
        """SIGTERM/SIGINT stop; SIGUSR1 presses the button; SIGUSR2 pulls or plugs."""

        def stop(_sig: int, _frame: FrameType | None) -> None:
            self._stop.set()

        def button(_sig: int, _frame: FrameType | None) -> None:
            self._button.set()

        def toggle(_sig: int, _frame: FrameType | None) -> None:
            self._want_plugged = not self._want_plugged
            if not self._want_plugged:
                self.link.remove()
                self.device.unplugged()
            self._replug_after = time.monotonic() + REINSERT_DELAY_S

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGUSR1, button)
        signal.signal(signal.SIGUSR2, toggle)

    def stop(self) -> None:
        """Ask the loop to end."""
        self._stop.set()

    def place(self, timeout: float = PLACE_TIMEOUT_S) -> None:
        """Plug the device in, once vpcd has it (:class:`SlotProblem` if not)."""
        self.link.place(timeout)
        self._say("device plugged in")

    def run(self) -> int:
        """Serve until stopped."""
        d = self.device
        self._say(
            f"simulated {d.snapshot()['model']} {d.serial} with {d.profiles} profiles "
            f"for vpcd at {self.link.host}:{self.link.port}"
        )
        try:
            if not self.link.inserted:
                self.place()
            while not self._stop.is_set():
                if self._button.is_set():
                    self._button.clear()
                    done = d.press_button()
                    self._say(f"▲ pressed: {done or 'nothing pending'}")
                if (
                    self._want_plugged
                    and not self.link.inserted
                    and time.monotonic() >= self._replug_after
                ):
                    try:
                        self.link.insert(timeout=1.0)
                        self._say("device plugged in")
                    except OSError:
                        pass
                self._report()
                self._stop.wait(0.1)
        finally:
            self.link.remove()
            self._report()
        return 0

    def _report(self) -> None:
        snap = self.device.snapshot()
        line = (snap["displayed_profile"], snap["code"], snap["pending_confirmation"])
        if line != self._last:
            self._last = line
            code = snap["code"] or "------"
            self._say(f"profile {snap['displayed_profile']}: {code}")
            if snap["pending_confirmation"]:
                self._say(f"waiting for ▲ to confirm {snap['pending_confirmation']}")
        if self.state_file is not None:
            write_json_atomic(self.state_file, snap)


def run(args: argparse.Namespace) -> int:
    """Build the device from the flags and serve it."""
    runner = Molto2Runner(build(args), args.port, host=args.host, state_file=args.state_file)
    runner.install_signals()
    return runner.run()
