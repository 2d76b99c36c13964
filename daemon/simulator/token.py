"""The simulated token: state, real-time clock, strict command dispatch, fault injection.

Two personalities share the state and the clock:

- ``token2`` (the default) follows token-protocol.md section 8: SM4 challenge-response
  with the three challenge forms, MAC-checked writes, a strict config TLV, method-2
  seed framing, the tagged GET INFO answer, an optional lockout policy, and a display
  that moves to new values only after a power cycle.
- ``opent2otp`` answers as Token2's published firmware core does (section 10; see
  :mod:`.firmware`).

Both keep or reset the clock's sub-second phase on a write (``clock_phase``), wrap
the u32 clock, and answer every APDU (an internal error is 6F 00, never a crash).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tokenstation.daemon.simulator.firmware import FirmwareCore
from tokenstation.daemon.simulator.totp import totp
from tokenstation.daemon.token import commands
from tokenstation.daemon.token.apdu import Command, Response
from tokenstation.daemon.token.crypto import (
    TOKEN2_KEY,
    auth_response,
    cbc_mac,
    decrypt_seed,
    mac_input,
)
from tokenstation.daemon.token.errors import SW, MalformedResponse
from tokenstation.daemon.token.models import ModelTable
from tokenstation.daemon.token.secret import Secret
from tokenstation.daemon.token.settings import (
    DISPLAY_TIMEOUT_CODES,
    PERIODS,
    HmacAlgorithm,
    TokenSettings,
    decode_config,
)

log = logging.getLogger(__name__)

SW_FILE_NOT_FOUND = 0x6A82
U32 = 1 << 32
PROFILES = ("token2", "opent2otp")
CLOCK_PHASES = ("reset", "keep")
SEED_CIPHERTEXT_LCS = (0x14, 0x24, 0x34, 0x44)
GET_UID = bytes.fromhex("FFCA000000")


@dataclass
class Faults:
    """Fault injection for tests.

    drop_after: after this many commands in a power-on session, the field is lost:
        the next command is not processed and the card leaves the reader.
    delay_s / delay_ins: delay every response (or only those to INS ``delay_ins``).
    refuse_all: answer every command with 69 83, as a locked-up token would.
    """

    drop_after: int | None = None
    delay_s: float = 0.0
    delay_ins: int | None = None
    refuse_all: bool = False


class TokenClock:
    """The token's RTC: host time plus an offset, running ``ppm`` parts per million fast.

    It is a u32 counter of seconds: past 4294967295 it wraps to 0. What a write does
    with the sub-second phase is the RTC chip's business (section 10), so both are
    here: ``phase="reset"`` starts the written second when the write arrives,
    ``phase="keep"`` replaces the seconds and keeps ticking on the old boundaries.
    """

    def __init__(
        self,
        host_time: Callable[[], float],
        offset_s: float = 0.0,
        ppm: float = 0.0,
        phase: str = "reset",
    ) -> None:
        if phase not in CLOCK_PHASES:
            raise ValueError(f"clock phase must be one of {CLOCK_PHASES}, not {phase!r}")
        self._host_time = host_time
        self._rate = 1.0 + ppm * 1e-6
        self.phase = phase
        self._anchor_host = host_time()
        self._anchor_token = self._anchor_host + offset_s

    def now(self) -> float:
        """The token's time with its sub-second part (what its display is driven by)."""
        return (self._anchor_token + (self._host_time() - self._anchor_host) * self._rate) % U32

    def seconds(self) -> int:
        """The whole seconds the token reports (a u32)."""
        return int(self.now() // 1) % U32

    def set(self, unix_seconds: int) -> None:
        """Set the counter to ``unix_seconds`` now, keeping or resetting the phase."""
        kept = self.now() % 1.0 if self.phase == "keep" else 0.0
        self._anchor_host = self._host_time()
        self._anchor_token = float(unix_seconds % U32) + kept


@dataclass
class _Stored:
    seed: Secret | None
    settings: TokenSettings


@dataclass
class SimulatedToken:
    """A single-profile programmable token."""

    serial: str = "86596320000001"
    restricted_sync: bool | None = None  # None: from the model table
    clock_offset_s: float = 0.0
    drift_ppm: float = 0.0
    lockout_after: int | None = None  # None: 2025 firmware, no lockout
    key: bytes = field(default=TOKEN2_KEY, repr=False)
    seed: Secret | None = None
    settings: TokenSettings = field(default_factory=TokenSettings)
    faults: Faults = field(default_factory=Faults)
    host_time: Callable[[], float] = time.time
    random: Callable[[int], bytes] = os.urandom
    profile: str = "token2"
    clock_phase: str = "reset"

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(f"firmware profile must be one of {PROFILES}, not {self.profile!r}")
        if self.restricted_sync is None:
            model = ModelTable().lookup(self.serial)
            self.restricted_sync = model.restricted_sync if model.programmable else True
        self.clock = TokenClock(
            self.host_time, self.clock_offset_s, self.drift_ppm, self.clock_phase
        )
        self._lock = threading.RLock()
        self._displayed = _Stored(self.seed, self.settings)
        self.switched_on = True
        self.fail_count = 0
        self.locked = False
        self.config_writes = 0
        self.seed_writes = 0
        #: When the last seed write was accepted (host time): what a benchmark of the
        #: burn path reads as "seed written", the token's own view.
        self.seed_written_at: float | None = None
        self.apdus = 0
        self.log: list[tuple[bytes, bytes | None]] = []
        self.challenge: bytes | None = None
        self.authed = False
        self._session_commands = 0
        self.internal_errors = 0
        # A 7-byte NFC UID (04 = NXP-style manufacturer byte) from a hash of the whole serial.
        self.uid = b"\x04" + hashlib.sha256(self.serial.encode()).digest()[:6]
        #: The running config in the firmware's raw bytes (display code, HMAC code, step).
        self.raw_config = _raw(self.settings)
        self._saved_raw_config = self.raw_config
        self._firmware: FirmwareCore | None = (
            FirmwareCore(self) if self.profile == "opent2otp" else None
        )

    @property
    def latches_display(self) -> bool:
        """True when new values show only after a power cycle (not on the firmware core)."""
        return self._firmware is None

    # -- power and session ---------------------------------------------------------------
    # Two things are apart here, as on the real token: the token being switched on
    # (its button; the display runs and NFC answers only then) and the reader's field
    # (vpcd's power on/off/reset), which only starts and ends card sessions.

    def switch_on(self) -> None:
        """Press the button: the display now shows the values written before."""
        with self._lock:
            if not self.switched_on:
                self._displayed = _Stored(self.seed, self.settings)
                self.raw_config = self._saved_raw_config
            self.switched_on = True
            self._reset_session()

    def switch_off(self) -> None:
        """The token switches off (button or display timeout); the RTC keeps running."""
        with self._lock:
            self.switched_on = False
            self._reset_session()

    def power_cycle(self) -> None:
        """Off and on again, as users are told to do after a burn."""
        self.switch_off()
        self.switch_on()

    def field_reset(self) -> None:
        """The reader powered, unpowered or reset the card.

        On the token2 personality the card session ends. The firmware core keeps its
        login across field loss; re-activation reloads its config from memory.
        """
        with self._lock:
            if self._firmware is not None:
                self.raw_config = self._saved_raw_config
                self._session_commands = 0
            else:
                self._reset_session()

    def _reset_session(self) -> None:
        self.challenge = None
        self.authed = False
        self._session_commands = 0

    # -- the display ---------------------------------------------------------------------

    def code(self) -> str | None:
        """What the screen shows now (the values active since the last power-on)."""
        if not self.latches_display:
            return self.code_after_power_cycle()
        with self._lock:
            shown = self._displayed
        if shown.seed is None:
            return None
        t = self.clock.now()
        return totp(shown.seed.reveal(), t, shown.settings.period, int(shown.settings.hmac))

    def code_after_power_cycle(self) -> str | None:
        """What the screen will show once the token is switched off and on."""
        with self._lock:
            seed, (_disp, hmac_code, step) = self.seed, self.raw_config
        if seed is None or not seed.reveal() or step == 0:
            return None  # a zero step would divide by zero: the screen shows no code
        return totp(seed.reveal(), self.clock.now(), step, 2 if hmac_code == 2 else 1)

    def snapshot(self) -> dict[str, object]:
        """The state file's content (a fingerprint of the seed, never the seed)."""
        with self._lock:
            return {
                "serial": self.serial,
                "model": ModelTable().lookup(self.serial).name,
                "profile": self.profile,
                "clock_phase": self.clock.phase,
                "uid": self.uid.hex(),
                "raw_config": list(self.raw_config),
                "internal_errors": self.internal_errors,
                "restricted_sync": self.restricted_sync,
                "token_time": self.clock.seconds(),
                "token_time_precise": round(self.clock.now(), 4),
                "host_time": round(self.host_time(), 4),
                "clock_offset_s": round(self.clock.now() - self.host_time(), 4),
                "seed_present": self.seed is not None,
                "seed_fingerprint": self.seed.fingerprint if self.seed else None,
                "hmac": self.settings.hmac.label,
                "period": self.settings.period,
                "display_timeout": self.settings.display_timeout,
                "code": self.code(),
                "code_after_power_cycle": self.code_after_power_cycle(),
                "switched_on": self.switched_on,
                "locked": self.locked,
                "failed_auths": self.fail_count,
                "config_writes": self.config_writes,
                "seed_writes": self.seed_writes,
                "seed_written_at": self.seed_written_at,
                "apdus": self.apdus,
            }

    # -- dispatch ------------------------------------------------------------------------

    def process(self, capdu: bytes) -> bytes | None:
        """Answer one command APDU; None means the field was lost (no answer at all)."""
        with self._lock:
            if not self.switched_on:
                return None
            f = self.faults
            if f.drop_after is not None and self._session_commands >= f.drop_after:
                self.field_reset()
                return None
            self._session_commands += 1
            self.apdus += 1
            rapdu = Response(b"", SW.AUTH_REFUSED).encode() if f.refuse_all else self._answer(capdu)
            self.log.append((bytes(capdu), rapdu))
        if f.delay_s and (f.delay_ins is None or (len(capdu) > 1 and capdu[1] == f.delay_ins)):
            time.sleep(f.delay_s)
        return rapdu

    def _answer(self, raw: bytes) -> bytes:
        """The personality's answer; whatever goes wrong inside, an answer (6F 00)."""
        try:
            if self._firmware is not None:
                return self._firmware.process(bytes(raw))
            return self._dispatch(bytes(raw))
        except Exception:
            self.internal_errors += 1
            log.exception("simulator error on APDU %s", bytes(raw[:5]).hex())
            return _sw(SW.NO_PRECISE_DIAGNOSIS)

    # -- state changes both personalities make -------------------------------------------

    def apply_config(self, raw_config: tuple[int, int, int], utc: int) -> None:
        """A config write was accepted: clock, settings, and the seed on restricted models."""
        self.clock.set(utc)
        self.raw_config = self._saved_raw_config = raw_config
        settings = _settings(raw_config)
        if settings is not None:
            self.settings = settings
        if self.restricted_sync:
            self.seed = None
        self.config_writes += 1

    def store_seed(self, seed: Secret | None) -> None:
        """A seed write was accepted (None: the empty seed, which erases it)."""
        self.seed = seed
        self.seed_writes += 1
        self.seed_written_at = self.host_time()

    # -- the token2 personality ----------------------------------------------------------

    def _dispatch(self, raw: bytes) -> bytes:
        if raw == GET_UID:
            return self.uid + b"\x90\x00"
        try:
            cmd = Command.decode(raw)
        except ValueError:
            return _sw(SW.WRONG_LENGTH)
        if cmd.cla == 0x00 and cmd.ins == commands.INS_SELECT:
            return self._select(cmd)
        if cmd.cla not in (commands.CLA_PLAIN, commands.CLA_MAC):
            return _sw(SW.CLA_NOT_SUPPORTED)
        handler = {
            (commands.CLA_PLAIN, commands.INS_GET_INFO): self._get_info,
            (commands.CLA_PLAIN, commands.INS_GET_CHALLENGE): self._get_challenge,
            (commands.CLA_PLAIN, commands.INS_AUTHENTICATE): self._authenticate,
            (commands.CLA_MAC, commands.INS_WRITE_CONFIG): self._write_config,
            (commands.CLA_MAC, commands.INS_WRITE_SEED): self._write_seed,
        }.get((cmd.cla, cmd.ins))
        if handler is None:
            return _sw(SW.INS_NOT_SUPPORTED)
        return handler(cmd)

    def _select(self, cmd: Command) -> bytes:
        if (cmd.p1, cmd.p2) != (0x04, 0x00):
            return _sw(SW.WRONG_P1P2)
        return _sw(SW.OK if cmd.data == commands.AID else SW_FILE_NOT_FOUND)

    def _get_info(self, cmd: Command) -> bytes:
        if (cmd.p1, cmd.p2) != (0x00, 0x00):
            return _sw(SW.WRONG_P1P2)
        if cmd.le is not None:
            return _sw(SW.WRONG_LENGTH)  # case 4 is refused, as Molto2 refuses it
        if cmd.data != bytes((commands.TAG_SERIAL, commands.TAG_CLOCK)):
            return _sw(SW.WRONG_DATA)
        return self.info_answer(commands.InfoForm.TAGGED)

    def info_answer(self, form: commands.InfoForm) -> bytes:
        """GET INFO's answer in ``form``, with 90 00."""
        info = commands.PublicInfo(self.serial, self.clock.seconds(), form)
        return commands.encode_info(info) + b"\x90\x00"

    def _get_challenge(self, cmd: Command) -> bytes:
        if (cmd.p1, cmd.p2) != (0x08, 0x00):
            return _sw(SW.WRONG_P1P2)
        forms_ok = (cmd.data, cmd.le) in ((b"", None), (b"", 0x00), (b"\x00", None))
        if not forms_ok:
            return _sw(SW.WRONG_LENGTH)
        self.challenge = self.random(8)
        self.authed = False
        return self.challenge + b"\x90\x00"

    def _authenticate(self, cmd: Command) -> bytes:
        if (cmd.p1, cmd.p2) != (0x00, 0x00):
            return _sw(SW.WRONG_P1P2)
        if len(cmd.data) != 16 or cmd.le is not None:
            return _sw(SW.WRONG_LENGTH)
        challenge, self.challenge = self.challenge, None  # a challenge is good for one try
        if self.locked or challenge is None:
            return _sw(SW.AUTH_REFUSED)
        if cmd.data != auth_response(self.key, challenge):
            self.fail_count += 1
            if self.lockout_after is not None and self.fail_count >= self.lockout_after:
                self.locked = True
            return _sw(SW.AUTH_REFUSED)
        self.authed = True
        return _sw(SW.OK)

    def _check_secured(self, cmd: Command) -> bytes | None:
        """The MAC'd body, or None when the session is not authenticated or the MAC is wrong."""
        if not self.authed or len(cmd.data) < 5:
            return None
        body, mac = cmd.data[:-4], cmd.data[-4:]
        if cbc_mac(self.key, mac_input(cmd.ins, cmd.p1, cmd.p2, body)) != mac:
            return None
        return body

    def _write_config(self, cmd: Command) -> bytes:
        if (cmd.p1, cmd.p2) != (0x00, 0x00):
            return _sw(SW.WRONG_P1P2)
        if len(cmd.data) != 0x17 or cmd.le is not None:
            return _sw(SW.WRONG_LENGTH)
        body = self._check_secured(cmd)
        if body is None:
            return _sw(SW.AUTH_REFUSED)
        try:
            settings, utc = decode_config(body)
        except MalformedResponse:
            return _sw(SW.WRONG_DATA)
        self.apply_config(_raw(settings), utc)
        return _sw(SW.OK)

    def _write_seed(self, cmd: Command) -> bytes:
        if (cmd.p1, cmd.p2) != (0x01, 0x00):
            return _sw(SW.WRONG_P1P2)
        if len(cmd.data) not in SEED_CIPHERTEXT_LCS or cmd.le is not None:
            return _sw(SW.WRONG_LENGTH)
        body = self._check_secured(cmd)
        if body is None:
            return _sw(SW.AUTH_REFUSED)
        seed = decrypt_seed(self.key, body)
        if seed is None:
            return _sw(SW.WRONG_DATA)
        self.store_seed(seed)
        return _sw(SW.OK)


def _sw(sw: int) -> bytes:
    return sw.to_bytes(2, "big")


def _raw(settings: TokenSettings) -> tuple[int, int, int]:
    """Settings as the config bytes carry them: display code, HMAC code, step seconds."""
    return (DISPLAY_TIMEOUT_CODES[settings.display_timeout], int(settings.hmac), settings.period)


def _settings(raw: tuple[int, int, int]) -> TokenSettings | None:
    """The raw config as settings, or None where it holds values tokenstation never sends."""
    disp, hmac_code, step = raw
    by_code = {code: secs for secs, code in DISPLAY_TIMEOUT_CODES.items()}
    if disp not in by_code or step not in PERIODS:
        return None
    return TokenSettings(
        HmacAlgorithm.SHA256 if hmac_code == 2 else HmacAlgorithm.SHA1, step, by_code[disp]
    )


def default_settings(
    hmac: str = "sha1", period: int = 30, display_timeout: int = 30
) -> TokenSettings:
    """Factory settings (display 30 s, SHA-1, 30 s step) or the given ones."""
    return TokenSettings(HmacAlgorithm.parse(hmac), period, display_timeout)
