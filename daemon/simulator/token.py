"""The simulated token: state, real-time clock, strict command dispatch, fault injection.

It follows token-protocol.md section 8: SM4 challenge-response with the three
challenge forms, MAC-checked writes, a strict config TLV, method-2 seed framing,
restricted or unrestricted clock sync, an optional lockout policy, and a display
that moves to new values only after a power cycle. Where the document marks real
behaviour as unknown (error words other than 6983, how a clock write treats the
sub-second phase) the choice made here is stated in the code.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..token import commands
from ..token.apdu import Command, Response
from ..token.crypto import TOKEN2_KEY, auth_response, cbc_mac, decrypt_seed, mac_input
from ..token.errors import SW, MalformedResponse
from ..token.models import ModelTable
from ..token.secret import Secret
from ..token.settings import HmacAlgorithm, TokenSettings, decode_config
from .totp import totp

SW_FILE_NOT_FOUND = 0x6A82
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

    A clock write restarts the count from the written second at the moment it is
    received (the sub-second phase is reset): an inference, the real behaviour is
    not documented.
    """

    def __init__(
        self, host_time: Callable[[], float], offset_s: float = 0.0, ppm: float = 0.0
    ) -> None:
        self._host_time = host_time
        self._rate = 1.0 + ppm * 1e-6
        self._anchor_host = host_time()
        self._anchor_token = self._anchor_host + offset_s

    def now(self) -> float:
        """The token's time with its sub-second part (what its display is driven by)."""
        return self._anchor_token + (self._host_time() - self._anchor_host) * self._rate

    def seconds(self) -> int:
        """The whole seconds the token reports."""
        return int(self.now() // 1)

    def set(self, unix_seconds: int) -> None:
        """Restart the count at ``unix_seconds`` now."""
        self._anchor_host = self._host_time()
        self._anchor_token = float(unix_seconds)


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

    def __post_init__(self) -> None:
        if self.restricted_sync is None:
            model = ModelTable().lookup(self.serial)
            self.restricted_sync = model.restricted_sync if model.programmable else True
        self.clock = TokenClock(self.host_time, self.clock_offset_s, self.drift_ppm)
        self._lock = threading.RLock()
        self._displayed = _Stored(self.seed, self.settings)
        self.switched_on = True
        self.fail_count = 0
        self.locked = False
        self.config_writes = 0
        self.seed_writes = 0
        self.apdus = 0
        self.log: list[tuple[bytes, bytes | None]] = []
        self._challenge: bytes | None = None
        self._authed = False
        self._session_commands = 0
        self.uid = bytes.fromhex("04") + self.serial.encode()[-6:].rjust(6, b"0")

    # -- power and session ---------------------------------------------------------------
    # Two things are apart here, as on the real token: the token being switched on
    # (its button; the display runs and NFC answers only then) and the reader's field
    # (vpcd's power on/off/reset), which only starts and ends card sessions.

    def switch_on(self) -> None:
        """Press the button: the display now shows the values written before."""
        with self._lock:
            if not self.switched_on:
                self._displayed = _Stored(self.seed, self.settings)
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
        """The reader powered, unpowered or reset the card: the card session ends."""
        with self._lock:
            self._reset_session()

    def _reset_session(self) -> None:
        self._challenge = None
        self._authed = False
        self._session_commands = 0

    # -- the display ---------------------------------------------------------------------

    def code(self) -> str | None:
        """What the screen shows now (the values active since the last power-on)."""
        with self._lock:
            shown = self._displayed
        if shown.seed is None:
            return None
        t = self.clock.now()
        return totp(shown.seed.reveal(), t, shown.settings.period, int(shown.settings.hmac))

    def code_after_power_cycle(self) -> str | None:
        """What the screen will show once the token is switched off and on."""
        with self._lock:
            seed, settings = self.seed, self.settings
        if seed is None:
            return None
        return totp(seed.reveal(), self.clock.now(), settings.period, int(settings.hmac))

    def snapshot(self) -> dict[str, object]:
        """The state file's content (a fingerprint of the seed, never the seed)."""
        with self._lock:
            return {
                "serial": self.serial,
                "model": ModelTable().lookup(self.serial).name,
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
                self._reset_session()
                return None
            self._session_commands += 1
            self.apdus += 1
            rapdu = (
                Response(b"", SW.AUTH_REFUSED).encode() if f.refuse_all else self._dispatch(capdu)
            )
            self.log.append((bytes(capdu), rapdu))
        if f.delay_s and (f.delay_ins is None or (len(capdu) > 1 and capdu[1] == f.delay_ins)):
            time.sleep(f.delay_s)
        return rapdu

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
        info = commands.PublicInfo(self.serial, self.clock.seconds())
        return commands.encode_info(info) + b"\x90\x00"

    def _get_challenge(self, cmd: Command) -> bytes:
        if (cmd.p1, cmd.p2) != (0x08, 0x00):
            return _sw(SW.WRONG_P1P2)
        forms_ok = (cmd.data, cmd.le) in ((b"", None), (b"", 0x00), (b"\x00", None))
        if not forms_ok:
            return _sw(SW.WRONG_LENGTH)
        self._challenge = self.random(8)
        self._authed = False
        return self._challenge + b"\x90\x00"

    def _authenticate(self, cmd: Command) -> bytes:
        if (cmd.p1, cmd.p2) != (0x00, 0x00):
            return _sw(SW.WRONG_P1P2)
        if len(cmd.data) != 16 or cmd.le is not None:
            return _sw(SW.WRONG_LENGTH)
        challenge, self._challenge = self._challenge, None  # a challenge is good for one try
        if self.locked or challenge is None:
            return _sw(SW.AUTH_REFUSED)
        if cmd.data != auth_response(self.key, challenge):
            self.fail_count += 1
            if self.lockout_after is not None and self.fail_count >= self.lockout_after:
                self.locked = True
            return _sw(SW.AUTH_REFUSED)
        self._authed = True
        return _sw(SW.OK)

    def _check_secured(self, cmd: Command) -> bytes | None:
        """The MAC'd body, or None when the session is not authenticated or the MAC is wrong."""
        if not self._authed or len(cmd.data) < 5:
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
        self.clock.set(utc)
        self.settings = settings
        if self.restricted_sync:
            self.seed = None
        self.config_writes += 1
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
        self.seed = seed
        self.seed_writes += 1
        return _sw(SW.OK)


def _sw(sw: int) -> bytes:
    return sw.to_bytes(2, "big")


def default_settings(
    hmac: str = "sha1", period: int = 30, display_timeout: int = 30
) -> TokenSettings:
    """Factory settings (display 30 s, SHA-1, 30 s step) or the given ones."""
    return TokenSettings(HmacAlgorithm.parse(hmac), period, display_timeout)
