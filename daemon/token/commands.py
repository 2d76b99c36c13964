"""Byte-exact builders and parsers for the single-profile command set (section 2)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .apdu import Command
from .crypto import auth_response, cbc_mac, encrypt_seed, mac_input
from .errors import MalformedResponse
from .secret import Secret
from .settings import TokenSettings, encode_config
from .tlv import parse, parse_one, require

CLA_PLAIN = 0x80
CLA_MAC = 0x84

INS_SELECT = 0xA4
INS_GET_INFO = 0x41
INS_GET_CHALLENGE = 0x4B
INS_AUTHENTICATE = 0xCE
INS_WRITE_CONFIG = 0xD4
INS_WRITE_SEED = 0xC5

TAG_PUBLIC_DATA = 0x95
TAG_SERIAL = 0x02
TAG_CLOCK = 0x11

AID = bytes.fromhex("B00000000023")

#: The optional SELECT (burn_otp's), 00 A4 04 00 06 B0 00 00 00 00 23, no Le.
SELECT = Command(0x00, INS_SELECT, 0x04, 0x00, AID).encode()
#: GET INFO, case 3: asks for tags 02 (serial) and 11 (clock). No Le (section 1.3).
GET_INFO = Command(CLA_PLAIN, INS_GET_INFO, 0x00, 0x00, bytes((TAG_SERIAL, TAG_CLOCK))).encode()


class ChallengeForm(Enum):
    """The three GET CHALLENGE encodings real tools send (section 2.4)."""

    TOKEN2 = "token2"  # 80 4B 08 00 01 00 (case 3)
    LE = "le"  # 80 4B 08 00 00 (case 2)
    BARE = "bare"  # 80 4B 08 00 (case 1)


def get_challenge(form: ChallengeForm = ChallengeForm.TOKEN2) -> bytes:
    """GET CHALLENGE for 8 random bytes."""
    if form is ChallengeForm.TOKEN2:
        return Command(CLA_PLAIN, INS_GET_CHALLENGE, 0x08, 0x00, b"\x00").encode()
    if form is ChallengeForm.LE:
        return Command(CLA_PLAIN, INS_GET_CHALLENGE, 0x08, 0x00, le=0x00).encode()
    return Command(CLA_PLAIN, INS_GET_CHALLENGE, 0x08, 0x00).encode()


def authenticate(key: bytes, challenge: bytes) -> bytes:
    """80 CE 00 00 10 || SM4_K(R || 00*8)."""
    return Command(CLA_PLAIN, INS_AUTHENTICATE, 0x00, 0x00, auth_response(key, challenge)).encode()


def secured(key: bytes, ins: int, p1: int, p2: int, body: bytes) -> bytes:
    """84 INS P1 P2 (Lc'+4) body MAC, the MAC over 80 INS P1 P2 Lc' body (section 3.3)."""
    mac = cbc_mac(key, mac_input(ins, p1, p2, body))
    return Command(CLA_MAC, ins, p1, p2, body + mac).encode()


def write_config(key: bytes, settings: TokenSettings, utc: int) -> bytes:
    """WRITE CONFIG with the clock set to ``utc`` (plaintext TLV + MAC)."""
    return secured(key, INS_WRITE_CONFIG, 0x00, 0x00, encode_config(settings, utc))


def write_seed(key: bytes, seed: Secret) -> bytes:
    """WRITE SEED: 84 C5 01 00 Lc SM4-ECB(pad(seed)) MAC."""
    return secured(key, INS_WRITE_SEED, 0x01, 0x00, encrypt_seed(key, seed))


@dataclass(frozen=True)
class PublicInfo:
    """What GET INFO returns: the serial and the token's clock (UNIX seconds, UTC)."""

    serial: str
    token_time: int


def parse_info(data: bytes) -> PublicInfo:
    """Parse ``95 LL [02 NN serial] [11 04 time]`` by TLV, not by offsets."""
    items = parse(parse_one(data, TAG_PUBLIC_DATA))
    serial_raw = require(items, TAG_SERIAL)
    clock = require(items, TAG_CLOCK)
    if len(clock) != 4:
        raise MalformedResponse(f"clock field is {len(clock)} bytes, expected 4")
    if not serial_raw or not all(0x20 < b < 0x7F for b in serial_raw):
        raise MalformedResponse("serial is empty or not printable ASCII")
    return PublicInfo(serial_raw.decode("ascii"), int.from_bytes(clock, "big"))


def encode_info(info: PublicInfo) -> bytes:
    """The GET INFO response data a token sends (used by the simulator)."""
    from .tlv import encode

    inner = encode(TAG_SERIAL, info.serial.encode("ascii")) + encode(
        TAG_CLOCK, info.token_time.to_bytes(4, "big")
    )
    return encode(TAG_PUBLIC_DATA, inner)
