"""The ``opent2otp`` personality: what Token2's published firmware core does on the wire.

Written from the facts listed in token-protocol.md section 10 (no code taken from
the core). Where it differs from the default personality:

- GET INFO: any ``80 41``, whatever P1/P2/data/Le, answers the untagged form
  ``00 00 00 NN serial 00 00 time``.
- Status words and their order: 67 00 for an APDU under 4 bytes, an Lc beyond the
  data, or CLA 84 with Lc under 4; on CLA 84 the MAC is checked first (69 83);
  69 83 for a write without login and a wrong AUTHENTICATE answer; 6A 80 for an
  AUTHENTICATE with no pending challenge or not 16 bytes (the challenge is kept),
  for bad seed framing and for a config body that is not the 19-byte fixed layout;
  6D 00 for an unknown INS (and 4B with P1 other than 08); 6E 00 for any other CLA,
  SELECT and FF CA included. A trailing Le is ignored.
- No lockout. A login survives field loss; only a new challenge or a switch-off
  (an MCU reset) ends it.
- Config: fixed tag order, no range checks; a refused body may already have changed
  the running display and HMAC until the next activation.
- Seeds: 16..64 bytes of ciphertext, a multiple of 16; the seed ends at the last 80
  followed only by 00; 80 00... alone stores the empty seed (erases it).
- No display latch: a new seed shows at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from tokenstation.daemon.token import commands
from tokenstation.daemon.token.crypto import auth_response, cbc_mac, mac_input, sm4_ecb_decrypt
from tokenstation.daemon.token.errors import SW
from tokenstation.daemon.token.secret import Secret


class CoreToken(Protocol):
    """What the firmware core reads and changes of a simulated token's state (the
    simulator's SimulatedToken is one; named here so this module needs no import of it)."""

    key: bytes
    challenge: bytes | None
    authed: bool
    fail_count: int
    raw_config: tuple[int, int, int]

    @property
    def random(self) -> Callable[[int], bytes]: ...

    def store_seed(self, seed: Secret | None) -> None: ...

    def apply_config(self, raw_config: tuple[int, int, int], utc: int) -> None: ...

    def info_answer(self, form: commands.InfoForm) -> bytes: ...


#: The config body's one accepted length: 81 11 [1F 01 d] [0F 04 tttt] [86 06 [0A 01 h] [0D 01 s]].
_CONFIG_LENGTH = 19


def _sw(sw: int) -> bytes:
    return sw.to_bytes(2, "big")


class FirmwareCore:
    """Answers APDUs for one simulated token as the firmware core would."""

    def __init__(self, token: CoreToken) -> None:
        self.token = token

    def process(self, raw: bytes) -> bytes:
        """One APDU in, one response out (data and status word)."""
        if len(raw) < 4:
            return _sw(SW.WRONG_LENGTH)
        cla, ins, p1 = raw[0], raw[1], raw[2]
        lc = raw[4] if len(raw) >= 5 else 0
        if len(raw) >= 5 and len(raw) < 5 + lc:
            return _sw(SW.WRONG_LENGTH)
        data = raw[5 : 5 + lc]  # anything after it (an Le) is ignored
        if cla == commands.CLA_PLAIN:
            if ins == commands.INS_GET_INFO:
                return self.token.info_answer(commands.InfoForm.UNTAGGED)
            if ins == commands.INS_GET_CHALLENGE and p1 == 0x08:
                return self._challenge()
            if ins == commands.INS_AUTHENTICATE:
                return self._authenticate(data)
            return _sw(SW.INS_NOT_SUPPORTED)
        if cla == commands.CLA_MAC:
            if lc < 4:
                return _sw(SW.WRONG_LENGTH)
            body, mac = data[:-4], data[-4:]
            if cbc_mac(self.token.key, mac_input(ins, p1, raw[3], body)) != mac:
                return _sw(SW.AUTH_REFUSED)
            if ins == commands.INS_WRITE_SEED and p1 == 0x01:
                return self._seed(body)
            if ins == commands.INS_WRITE_CONFIG:
                return self._config(body)
            return _sw(SW.INS_NOT_SUPPORTED)
        return _sw(SW.CLA_NOT_SUPPORTED)

    def _challenge(self) -> bytes:
        tok = self.token
        tok.challenge = tok.random(8)
        tok.authed = False
        return tok.challenge + _sw(SW.OK)

    def _authenticate(self, data: bytes) -> bytes:
        tok = self.token
        if tok.challenge is None or len(data) != 16:
            return _sw(SW.WRONG_DATA)  # the challenge stays pending
        challenge, tok.challenge = tok.challenge, None
        if data != auth_response(tok.key, challenge):
            tok.fail_count += 1  # counted for the state file; there is no lockout
            return _sw(SW.AUTH_REFUSED)
        tok.authed = True
        return _sw(SW.OK)

    def _seed(self, body: bytes) -> bytes:
        tok = self.token
        if not tok.authed:
            return _sw(SW.AUTH_REFUSED)
        if not body or len(body) % 16 or len(body) > 64:
            return _sw(SW.WRONG_DATA)
        plain = sm4_ecb_decrypt(tok.key, body)
        end = len(plain)
        while end and plain[end - 1] == 0x00:
            end -= 1
        if not end or plain[end - 1] != 0x80:
            return _sw(SW.WRONG_DATA)
        seed = plain[: end - 1]
        tok.store_seed(Secret(seed) if seed else None)
        return _sw(SW.OK)

    def _config(self, body: bytes) -> bytes:
        tok = self.token
        if not tok.authed:
            return _sw(SW.AUTH_REFUSED)
        if len(body) != _CONFIG_LENGTH:
            return _sw(SW.WRONG_DATA)
        disp, hmac_code, step = tok.raw_config
        # Fixed order; each value byte is taken once the tag bytes before it matched, so
        # a body refused further on has already changed what was taken (until the next
        # activation reloads the stored config).
        if body[0:4] != b"\x81\x11\x1f\x01":
            return _sw(SW.WRONG_DATA)
        disp = body[4]
        tok.raw_config = (disp, hmac_code, step)
        if body[5:7] != b"\x0f\x04":
            return _sw(SW.WRONG_DATA)
        utc = int.from_bytes(body[7:11], "big")
        if body[11:15] != b"\x86\x06\x0a\x01":
            return _sw(SW.WRONG_DATA)
        hmac_code = body[15]
        tok.raw_config = (disp, hmac_code, step)
        if body[16:18] != b"\x0d\x01":
            return _sw(SW.WRONG_DATA)
        step = body[18]
        tok.apply_config((disp, hmac_code, step), utc)
        return _sw(SW.OK)
