"""Byte-exact builders and parsers for the single-profile command set (section 2)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from tokenstation.daemon.token.apdu import Command
from tokenstation.daemon.token.crypto import auth_response, cbc_mac, encrypt_seed, mac_input
from tokenstation.daemon.token.errors import MalformedResponse
from tokenstation.daemon.token.secret import Secret
from tokenstation.daemon.token.settings import TokenSettings, encode_config
from tokenstation.daemon.token.tlv import encode as tlv_encode

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
#: Applets of security keys, asked for (read-only SELECT) only after GET INFO failed.
FIDO_AID = bytes.fromhex("A0000006472F0001")
YKOATH_AID = bytes.fromhex("A0000005272101")


def select_aid(aid: bytes) -> bytes:
    """SELECT by name, case 4 (Le 00): 00 A4 04 00 Lc AID 00. It reads nothing, writes nothing."""
    return Command(0x00, INS_SELECT, 0x04, 0x00, aid, le=0x00).encode()


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


class InfoForm(Enum):
    """The two GET INFO answer layouts seen (section 2.3); both carry the same fields."""

    TAGGED = "tagged"  # 95 LL 02 NN <serial> 11 04 <time>: hardware-tested hosts' reading
    UNTAGGED = "untagged"  # 00 00 00 NN <serial> 00 00 <time>: Token2's published core


#: The two bytes between the serial and the clock, per form.
_SEPARATOR: dict[InfoForm, bytes] = {
    InfoForm.TAGGED: bytes((TAG_CLOCK, 0x04)),
    InfoForm.UNTAGGED: b"\x00\x00",
}

U32_MASK = 0xFFFFFFFF


@dataclass(frozen=True)
class PublicInfo:
    """What GET INFO returns: the serial and the token's clock (UNIX seconds, UTC)."""

    serial: str
    token_time: int
    form: InfoForm = InfoForm.TAGGED


def parse_info(data: bytes) -> PublicInfo:
    """Parse either GET INFO layout, each checked byte for byte (section 2.3).

    Tagged: ``95 LL 02 NN serial 11 04 time`` with LL = NN + 8. Untagged:
    ``00 00 00 NN serial 00 00 time``. In both the whole answer is NN + 10 bytes and
    the serial is printable ASCII. Anything else raises :class:`MalformedResponse`.
    """
    if len(data) < 4:
        raise MalformedResponse(f"GET INFO answer of {len(data)} bytes is too short")
    if data[0] == TAG_PUBLIC_DATA:
        form = InfoForm.TAGGED
        if data[2] != TAG_SERIAL:
            raise MalformedResponse(f"GET INFO answer has tag {data[2]:02X} where 02 belongs")
    elif data[:3] == bytes(3):
        form = InfoForm.UNTAGGED
    else:
        raise MalformedResponse(
            f"GET INFO answer starts {data[:3].hex(' ').upper()}, neither 95 LL 02 nor 00 00 00"
        )
    n = data[3]
    if len(data) != n + 10:
        raise MalformedResponse(
            f"GET INFO answer is {len(data)} bytes; a {n}-byte serial makes it {n + 10}"
        )
    if form is InfoForm.TAGGED and data[1] != n + 8:
        raise MalformedResponse(f"GET INFO outer length {data[1]} does not match {n + 8}")
    serial_raw = data[4 : 4 + n]
    separator = data[4 + n : 6 + n]
    if separator != _SEPARATOR[form]:
        raise MalformedResponse(
            f"GET INFO ({form.value}) has {separator.hex(' ').upper()} after the serial, "
            f"expected {_SEPARATOR[form].hex(' ').upper()}"
        )
    if not serial_raw or not all(0x20 < b < 0x7F for b in serial_raw):
        raise MalformedResponse("serial is empty or not printable ASCII")
    return PublicInfo(serial_raw.decode("ascii"), int.from_bytes(data[6 + n : 10 + n], "big"), form)


def encode_info(info: PublicInfo) -> bytes:
    """The GET INFO response data a token sends (used by the simulator).

    The clock is a u32: values beyond it wrap, as the token's counter does.
    """
    serial = info.serial.encode("ascii")
    if not 1 <= len(serial) <= 0xF5:
        raise ValueError(f"a serial of {len(serial)} bytes does not fit GET INFO")
    clock = (info.token_time & U32_MASK).to_bytes(4, "big")
    if info.form is InfoForm.UNTAGGED:
        return bytes(3) + bytes((len(serial),)) + serial + _SEPARATOR[InfoForm.UNTAGGED] + clock
    inner = tlv_encode(TAG_SERIAL, serial) + tlv_encode(TAG_CLOCK, clock)
    return tlv_encode(TAG_PUBLIC_DATA, inner)
