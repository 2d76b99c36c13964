"""A simulated Token2 Molto2v2: 100 profiles behind one USB CCID "reader" (section 6.1).

What it does, and the choices made where the sources are silent (marked INF):
- GET INFO `80 41 00 00 00` answers the tagged layout of section 2.3 (the single-profile
  form with data `02 11` gets the same answer: INF).
- Public data `80 41 00 PP 01 70`: flag (20 once written, INF), plaintext title, time A
  = the profile's clock now (the manual's "RTCTime", INF), time B = the last time
  written to the profile ("TimeCfg", INF), algorithm, step, digits, seed present.
  Empty profiles report SHA-1 / 30 s / 6 digits, as observed on hardware. With an Le
  byte it answers `6F FB`.
- Challenge/auth with K = SHA1(customer key)[:16]; failure `63 NN` with NN attempts
  left (10 at start, INF); at 0 the device is locked (every auth `63 00`).
- Seed, title and config writes per profile need the login and a good MAC (else 69 82,
  INF). A seed write over an existing seed is accepted, as nothing says the device
  refuses it: refusing is the host's job. An all-zero, zero-padded seed clears it.
- Time-only sync keeps the seed and the settings. Delete `80 E6` needs no login (keyroost,
  hardware) and answers `6A 83` on an empty profile; the title survives.
- Key change and factory reset answer `90 60` and take effect only when the up-arrow
  button is pressed (:meth:`press_button`; the runner maps SIGUSR1 to it), or at
  once with ``auto_confirm``.
- Each profile has its own clock (set by its config/sync writes), running at the
  device's rate; the display shows one profile's code at a time. With
  ``clock_ignores_writes`` (a faulty device) those writes answer 90 00 and store their
  settings, but no clock moves.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tokenstation.daemon.simulator.token import TokenClock
from tokenstation.daemon.simulator.totp import totp
from tokenstation.daemon.token import commands
from tokenstation.daemon.token import molto2 as m
from tokenstation.daemon.token.apdu import Command
from tokenstation.daemon.token.crypto import (
    auth_response,
    cbc_mac,
    decrypt_seed,
    mac_input,
    sm4_ecb_decrypt,
    unpad_method2,
)
from tokenstation.daemon.token.errors import SW, MalformedResponse
from tokenstation.daemon.token.secret import Secret

SW_WRONG_P1P2_NOT_FOUND = 0x6A86
FLAG_WRITTEN = 0x20
DEFAULT_ATTEMPTS = 10
DEFAULT_SERIAL = "58000001"


@dataclass
class Molto2Faults:
    """Fault injection: after ``drop_after`` APDUs the device is pulled out, once."""

    drop_after: int | None = None
    delay_s: float = 0.0


@dataclass
class SimProfile:
    """One profile's state."""

    clock: TokenClock
    title: str = ""
    seed: Secret | None = None
    settings: m.ProfileSettings = field(default_factory=m.ProfileSettings)
    time_cfg: int = 0
    written: bool = False
    seed_writes: int = 0
    config_writes: int = 0
    sync_writes: int = 0

    def code(self) -> str | None:
        """The code this profile shows now."""
        if self.seed is None:
            return None
        s = self.settings
        return totp(self.seed.reveal(), self.clock.now(), s.period, int(s.hmac), s.digits)


@dataclass
class SimulatedMolto2:
    """A Molto2v2 with ``profiles`` profiles (100; 50 for the first Molto2)."""

    serial: str = DEFAULT_SERIAL
    profiles: int = m.PROFILES
    customer_key: bytes = field(default=m.DEFAULT_CUSTOMER_KEY, repr=False)
    clock_offset_s: float = 0.0
    drift_ppm: float = 0.0
    attempts: int = DEFAULT_ATTEMPTS
    auto_confirm: bool = False
    #: A faulty device: config and sync writes answer 90 00 but no profile clock moves.
    clock_ignores_writes: bool = False
    faults: Molto2Faults = field(default_factory=Molto2Faults)
    host_time: Callable[[], float] = time.time
    random: Callable[[int], bytes] = os.urandom

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self.clock = TokenClock(self.host_time, self.clock_offset_s, self.drift_ppm)
        self.slots = [self._blank_profile() for _ in range(self.profiles)]
        self.key = m.derive_key(self.customer_key)
        self.attempts_left = self.attempts
        self.pending: tuple[str, bytes] | None = None
        self.displayed = 0
        self.screen_locked = False
        self.apdus = 0
        self.confirmed: list[str] = []
        self.log: list[tuple[bytes, bytes | None]] = []
        self._challenge: bytes | None = None
        self._authed = False
        self._commands_since_plug = 0

    def _blank_profile(self) -> SimProfile:
        offset = self.clock.now() - self.host_time()
        return SimProfile(TokenClock(self.host_time, offset, self.drift_ppm))

    # -- set-up and the buttons ----------------------------------------------------------

    def preload(self, index: int, seed: Secret, settings: m.ProfileSettings, title: str) -> None:
        """Put a seed on a profile before the test starts (as if burned earlier)."""
        with self._lock:
            p = self.slots[m.check_profile(index)]
            p.seed, p.settings, p.title, p.written = seed, settings, m.fit_title(title), True

    def press_button(self) -> str | None:
        """The up-arrow button: commit a pending key change or factory reset."""
        with self._lock:
            pending, self.pending = self.pending, None
            if pending is None:
                return None
            what, data = pending
            if what == "key":
                self.key = data
            else:
                self.key = m.derive_key(m.DEFAULT_CUSTOMER_KEY)
                self.slots = [self._blank_profile() for _ in range(self.profiles)]
                self.attempts_left = self.attempts
            self.confirmed.append(what)
            self._reset_session()
            return what

    def unplugged(self) -> None:
        """The device left the USB port (the runner calls it when the link drops)."""
        with self._lock:
            self._reset_session()
            self._commands_since_plug = 0

    def field_reset(self) -> None:
        """The reader powered or reset the card: the login ends."""
        with self._lock:
            self._reset_session()

    def _reset_session(self) -> None:
        self._challenge = None
        self._authed = False

    # -- what the device shows -----------------------------------------------------------

    def code(self, index: int | None = None) -> str | None:
        """The code shown by profile ``index`` (the displayed one by default)."""
        with self._lock:
            return self.slots[self.displayed if index is None else index].code()

    def snapshot(self) -> dict[str, object]:
        """The state file: every profile, with a seed fingerprint at most."""
        with self._lock:
            host = self.host_time()
            profiles = []
            for i, p in enumerate(self.slots):
                profiles.append(
                    {
                        "profile": i,
                        "title": p.title,
                        "seed_present": p.seed is not None,
                        "seed_fingerprint": p.seed.fingerprint if p.seed else None,
                        **p.settings.as_dict(),
                        "clock_offset_s": round(p.clock.now() - host, 4),
                        "code": p.code(),
                        "seed_writes": p.seed_writes,
                        "config_writes": p.config_writes,
                        "sync_writes": p.sync_writes,
                    }
                )
            return {
                "kind": "molto2",
                "model": "Molto2v2" if self.profiles == m.PROFILES else "Molto2",
                "serial": self.serial,
                "host_time": round(host, 4),
                "token_time": self.clock.seconds(),
                "clock_offset_s": round(self.clock.now() - host, 4),
                "displayed_profile": self.displayed,
                "code": self.code(),
                "pending_confirmation": self.pending[0] if self.pending else None,
                "confirmed": list(self.confirmed),
                "attempts_left": self.attempts_left,
                "locked": self.attempts_left == 0,
                "apdus": self.apdus,
                "seed_writes": sum(p.seed_writes for p in self.slots),
                "profiles": profiles,
            }

    # -- dispatch ------------------------------------------------------------------------

    def process(self, capdu: bytes) -> bytes | None:
        """Answer one APDU; None means the device was pulled (no answer)."""
        with self._lock:
            f = self.faults
            if f.drop_after is not None and self._commands_since_plug >= f.drop_after:
                f.drop_after = None  # one pull: plugged back in, it answers again
                return None
            self._commands_since_plug += 1
            self.apdus += 1
            rapdu = self._dispatch(bytes(capdu))
            self.log.append((bytes(capdu), rapdu))
        if f.delay_s:
            time.sleep(f.delay_s)
        return rapdu

    def _dispatch(self, raw: bytes) -> bytes:
        try:
            cmd = Command.decode(raw)
        except ValueError:
            return _sw(SW.WRONG_LENGTH)
        if cmd.cla not in (commands.CLA_PLAIN, commands.CLA_MAC):
            return _sw(SW.CLA_NOT_SUPPORTED)
        handler = {
            (commands.CLA_PLAIN, commands.INS_GET_INFO): self._read,
            (commands.CLA_PLAIN, commands.INS_GET_CHALLENGE): self._get_challenge,
            (commands.CLA_PLAIN, commands.INS_AUTHENTICATE): self._authenticate,
            (commands.CLA_PLAIN, m.INS_DELETE_SEED): self._delete,
            (commands.CLA_PLAIN, m.INS_FACTORY_RESET): self._factory_reset,
            (commands.CLA_PLAIN, m.INS_SCREEN_LOCK): self._screen_lock,
            (commands.CLA_MAC, commands.INS_WRITE_SEED): self._write_seed,
            (commands.CLA_MAC, m.INS_WRITE_TITLE): self._write_title,
            (commands.CLA_MAC, commands.INS_WRITE_CONFIG): self._write_config,
            (commands.CLA_MAC, m.INS_CHANGE_KEY): self._change_key,
        }.get((cmd.cla, cmd.ins))
        if handler is None:
            return _sw(SW.INS_NOT_SUPPORTED)
        return handler(cmd)

    def _profile(self, p2: int) -> SimProfile | None:
        return self.slots[p2] if p2 < self.profiles else None

    def _read(self, cmd: Command) -> bytes:
        if cmd.p1 != 0x00:
            return _sw(SW.WRONG_P1P2)
        if cmd.p2 == 0x00 and cmd.data in (b"", bytes((commands.TAG_SERIAL, commands.TAG_CLOCK))):
            device = commands.PublicInfo(self.serial, self.clock.seconds())
            return commands.encode_info(device) + _sw(SW.OK)
        if cmd.data != bytes((m.TAG_SEED_INFO,)):
            return _sw(SW.WRONG_DATA)
        if cmd.le is not None:
            return _sw(m.SW_CASE4_REFUSED)
        p = self._profile(cmd.p2)
        if p is None:
            return _sw(SW_WRONG_P1P2_NOT_FOUND)
        s = p.settings
        info = m.ProfileInfo(
            index=cmd.p2,
            flag=FLAG_WRITTEN if p.written else 0,
            title=p.title,
            time_a=p.clock.seconds(),
            time_b=p.time_cfg,
            algorithm=int(s.hmac),
            period=s.period,
            digits=s.digits,
            seed_present=p.seed is not None,
        )
        return m.encode_profile(info) + _sw(SW.OK)

    def _get_challenge(self, cmd: Command) -> bytes:
        if (cmd.p1, cmd.p2) != (0x08, 0x00):
            return _sw(SW.WRONG_P1P2)
        if (cmd.data, cmd.le) not in ((b"", None), (b"", 0x00), (b"\x00", None)):
            return _sw(SW.WRONG_LENGTH)
        self._challenge = self.random(8)
        self._authed = False
        return self._challenge + _sw(SW.OK)

    def _authenticate(self, cmd: Command) -> bytes:
        if (cmd.p1, cmd.p2) != (0x00, 0x00) or len(cmd.data) != 16:
            return _sw(SW.WRONG_LENGTH)
        challenge, self._challenge = self._challenge, None
        if self.attempts_left == 0 or challenge is None:
            return _sw(0x6300 | self.attempts_left)
        if cmd.data != auth_response(self.key, challenge):
            self.attempts_left -= 1
            return _sw(0x6300 | self.attempts_left)
        self.attempts_left = self.attempts
        self._authed = True
        return _sw(SW.OK)

    def _secured(self, cmd: Command) -> bytes | None:
        if not self._authed or len(cmd.data) < 5:
            return None
        body, mac = cmd.data[:-4], cmd.data[-4:]
        if cbc_mac(self.key, mac_input(cmd.ins, cmd.p1, cmd.p2, body)) != mac:
            return None
        return body

    def _profile_write(self, cmd: Command, p1: int) -> tuple[SimProfile, bytes] | bytes:
        """A profile write's profile (P2) and secured body, or the status word refusing it
        (a P1 other than ``p1`` or no such profile; no session or a wrong MAC)."""
        p = self._profile(cmd.p2)
        if cmd.p1 != p1 or p is None:
            return _sw(SW.WRONG_P1P2)
        body = self._secured(cmd)
        if body is None:
            return _sw(SW.SECURITY_NOT_SATISFIED)
        return p, body

    def _write_seed(self, cmd: Command) -> bytes:
        checked = self._profile_write(cmd, 0x01)
        if isinstance(checked, bytes):
            return checked
        p, body = checked
        if len(body) not in (16, 32, 48, 64):
            return _sw(SW.WRONG_LENGTH)
        if not any(sm4_ecb_decrypt(self.key, body)):
            p.seed = None  # molto2.py's all-zero "clear" value
            return _sw(SW.OK)
        seed = decrypt_seed(self.key, body)
        if seed is None:
            return _sw(SW.WRONG_DATA)
        p.seed, p.written = seed, True
        p.seed_writes += 1
        self.displayed = cmd.p2
        return _sw(SW.OK)

    def _write_title(self, cmd: Command) -> bytes:
        checked = self._profile_write(cmd, 0x00)
        if isinstance(checked, bytes):
            return checked
        p, body = checked
        if len(body) != 16:
            return _sw(SW.WRONG_LENGTH)
        raw = unpad_method2(sm4_ecb_decrypt(self.key, body))
        if raw is None or not 1 <= len(raw) <= m.TITLE_MAX_BYTES:
            return _sw(SW.WRONG_DATA)
        p.title, p.written = raw.decode("utf-8", errors="replace"), True
        return _sw(SW.OK)

    def _write_config(self, cmd: Command) -> bytes:
        checked = self._profile_write(cmd, 0x01)
        if isinstance(checked, bytes):
            return checked
        p, body = checked
        try:
            settings, utc = m.decode_config(body)
        except MalformedResponse:
            return _sw(SW.WRONG_DATA)
        if not self.clock_ignores_writes:
            p.clock.set(utc)
        p.time_cfg = utc
        if settings is None:
            p.sync_writes += 1
        else:
            p.settings, p.written = settings, True
            p.config_writes += 1
        return _sw(SW.OK)

    def _delete(self, cmd: Command) -> bytes:
        p = self._profile(cmd.p2)
        if cmd.p1 != 0x00 or p is None:
            return _sw(SW.WRONG_P1P2)
        if p.seed is None:
            return _sw(m.SW_NOT_FOUND)
        p.seed = None
        return _sw(SW.OK)

    def _change_key(self, cmd: Command) -> bytes:
        if (cmd.p1, cmd.p2) != (0x00, 0x00):
            return _sw(SW.WRONG_P1P2)
        body = self._secured(cmd)
        if body is None:
            return _sw(SW.SECURITY_NOT_SATISFIED)
        if len(body) != 32:
            return _sw(SW.WRONG_LENGTH)
        plain = sm4_ecb_decrypt(self.key, body)
        if plain[0] != 0x00 or plain[17:] != b"\x80" + bytes(14):
            return _sw(SW.WRONG_DATA)
        return self._await_button("key", plain[1:17])

    def _factory_reset(self, cmd: Command) -> bytes:
        if (cmd.p1, cmd.p2) != (0x00, 0x00):
            return _sw(SW.WRONG_P1P2)
        return self._await_button("reset", b"")

    def _await_button(self, what: str, data: bytes) -> bytes:
        self.pending = (what, data)
        if self.auto_confirm:
            self.press_button()
        return _sw(m.SW_AWAITING_BUTTON)

    def _screen_lock(self, cmd: Command) -> bytes:
        if (cmd.p1, cmd.p2) != (0x0C, 0x02):
            return _sw(SW.WRONG_P1P2)
        self.screen_locked = cmd.data != b"\x01"
        return _sw(SW.OK)


def _sw(sw: int) -> bytes:
    return sw.to_bytes(2, "big")
