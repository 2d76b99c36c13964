"""Run a simulated token in a vpcd slot: its screen on stdout, its state in a JSON file."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TextIO

from tokenstation.daemon.simulator.token import SimulatedToken
from tokenstation.daemon.simulator.vpcd import PLACE_TIMEOUT_S, VpcdLink, contactless_atr

log = logging.getLogger(__name__)

#: Historical bytes of the simulated card's ATR. Made up: the real tokens' ATS is unknown.
HISTORICAL_BYTES = b"TS-SIM01"
#: How long a power-cycled or re-placed token stays off the reader.
REINSERT_DELAY_S = 1.0


class SimulatorRunner:
    """Keeps one simulated token in a vpcd slot until stopped.

    SIGTERM/SIGINT stop it; SIGUSR1 switches the token off and on (the display takes
    the new seed and settings); SIGUSR2 takes it off the reader or puts it back.
    """

    def __init__(
        self,
        token: SimulatedToken,
        port: int,
        *,
        host: str = "127.0.0.1",
        state_file: Path | None = None,
        out: TextIO = sys.stdout,
        auto_off: bool = False,
    ) -> None:
        self.token = token
        self.link = VpcdLink(token, contactless_atr(HISTORICAL_BYTES), port, host, self._removed)
        self.state_file = state_file
        self.out = out
        self.auto_off = auto_off
        self._stop = threading.Event()
        self._want_on_reader = True
        self._switched_on_at = time.monotonic()
        self._off_reader_until = 0.0
        self._last_line: tuple[object, ...] = ()
        self._counters = (0, 0)

    def _say(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S", time.gmtime(self.token.clock.now()))
        self.out.write(f"{stamp}  {text}\n")
        self.out.flush()

    def _removed(self) -> None:
        if self._want_on_reader and not self._stop.is_set():
            self._want_on_reader = False
            self._say("token left the reader (field lost); SIGUSR2 puts it back")

    def install_signals(self) -> None:
        """Handle SIGTERM/SIGINT/SIGUSR1/SIGUSR2 (main thread only)."""

        def stop(_sig: int, _frame: FrameType | None) -> None:
            self._stop.set()

        def cycle(_sig: int, _frame: FrameType | None) -> None:
            self.power_cycle()

        def toggle(_sig: int, _frame: FrameType | None) -> None:
            self._want_on_reader = not self._want_on_reader
            if not self._want_on_reader:
                self.link.remove()
                self._off_reader_until = time.monotonic() + REINSERT_DELAY_S

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGUSR1, cycle)
        signal.signal(signal.SIGUSR2, toggle)

    def power_cycle(self) -> None:
        """Switch off and on; the card session ends and the display takes new values."""
        self.link.remove()
        self.token.power_cycle()
        self._switched_on_at = time.monotonic()
        # By hand a power cycle takes over a second; vpcd polls every 400 ms and would
        # not notice a card that is gone and back within one poll.
        self._off_reader_until = time.monotonic() + REINSERT_DELAY_S
        self._want_on_reader = True
        self._say("switched off and on")

    def stop(self) -> None:
        """Ask the loop to end."""
        self._stop.set()

    def place(self, timeout: float = PLACE_TIMEOUT_S) -> None:
        """Put the token on the reader, once vpcd has it (:class:`SlotProblem` if not)."""
        self.link.place(timeout)
        self._say("token placed on the reader")

    def run(self) -> int:
        """Serve until stopped; returns the exit code."""
        tok = self.token
        self._say(
            f"simulated token {tok.serial} ({tok.snapshot()['model']}, "
            f"{'restricted' if tok.restricted_sync else 'unrestricted'} sync, "
            f"{tok.profile} firmware profile, "
            f"{'phase-keeping' if tok.clock.phase == 'keep' else 'phase-resetting'} clock) "
            f"for vpcd at {self.link.host}:{self.link.port}"
        )
        if tok.profile == "opent2otp" and tok.lockout_after is not None:
            self._say("--lockout is ignored: the firmware core has had no lockout since 2025")
        waited = False
        try:
            if not self.link.inserted:
                self.place()
            while not self._stop.is_set():
                self._keep_inserted(waited)
                waited = waited or not self.link.inserted
                self._check_auto_off()
                self._report()
                self._stop.wait(0.1)
        finally:
            self.link.remove()
            self._report(final=True)
        return 0

    def _keep_inserted(self, waited: bool) -> None:
        if not self._want_on_reader or self.link.inserted or not self.token.switched_on:
            return
        if time.monotonic() < self._off_reader_until:
            return
        try:
            self.link.insert(timeout=1.0)
            self._say("token placed on the reader")
        except OSError:
            if not waited:
                self._say(f"waiting for vpcd on port {self.link.port}")

    def _check_auto_off(self) -> None:
        if not self.auto_off or not self.token.switched_on:
            return
        if time.monotonic() - self._switched_on_at >= self.token.settings.display_timeout:
            self.link.remove()
            self.token.switch_off()
            self._say("display timed out: token switched off (SIGUSR1 switches it on)")

    def _report(self, final: bool = False) -> None:
        snap = self.token.snapshot()
        counters = (int(snap["config_writes"]), int(snap["seed_writes"]))  # type: ignore[call-overload]
        if counters != self._counters:
            if counters[0] != self._counters[0]:
                self._say(
                    f"config written: {str(snap['hmac']).upper()}, {snap['period']} s step, "
                    f"{snap['display_timeout']} s display, clock {snap['token_time']}"
                    + ("; seed erased" if tok_restricted(snap) and not snap["seed_present"] else "")
                )
            if counters[1] != self._counters[1]:
                self._say(f"seed written: fingerprint {snap['seed_fingerprint']}")
            self._counters = counters
        line = (snap["code"], snap["switched_on"], snap["locked"])
        if line != self._last_line:
            self._last_line = line
            if not snap["switched_on"]:
                self._say("display off")
            elif snap["code"] is None:
                self._say("------  (no seed)")
            else:
                code = str(snap["code"])
                self._say(f"{code[:3]} {code[3:]}")
            if snap["locked"]:
                self._say("token locked after failed authentications")
        if self.state_file is not None:
            write_json_atomic(self.state_file, {**snap, "seen_by_reader_at": self.link.greeted_at})


def tok_restricted(snap: dict[str, object]) -> bool:
    """True when the snapshot is of a restricted-sync token."""
    return bool(snap.get("restricted_sync"))


def write_json_atomic(path: Path, data: dict[str, object]) -> None:
    """Write JSON so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
