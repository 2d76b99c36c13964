"""Byte-exact builders and parsers for Token2 Molto2 / Molto2v2 (token-protocol.md 6.1).

Bytes in, bytes out, no I/O. The Molto2 is a USB CCID device holding up to 100 TOTP
profiles; it speaks the single-profile family's APDUs with the profile number in P2,
its SM4 key is SHA1(customer key)[:16], and it adds per-profile public data (title,
settings, seed-present flag), title writes, a time-only clock write, seed delete, key
change and factory reset. The SM4 primitives, the MAC and the seed framing are the
single-profile ones (crypto.py); nothing here re-implements them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from tokenstation.daemon.token.apdu import Command
from tokenstation.daemon.token.commands import (
    CLA_PLAIN,
    INS_GET_CHALLENGE,
    INS_GET_INFO,
    INS_WRITE_CONFIG,
    INS_WRITE_SEED,
    PublicInfo,
    parse_info,
    secured,
)
from tokenstation.daemon.token.crypto import BLOCK, encrypt_seed, pad_method2, sm4_ecb_encrypt
from tokenstation.daemon.token.errors import InvalidInput, MalformedResponse
from tokenstation.daemon.token.secret import Secret
from tokenstation.daemon.token.settings import (
    DISPLAY_TIMEOUT_CODES,
    PERIODS,
    TAG_DISPLAY_TIMEOUT,
    TAG_SYS_CONFIG,
    TAG_TOTP_HMAC,
    TAG_TOTP_PARAM,
    TAG_TOTP_STEP,
    TAG_UTC_TIME,
    U32_MAX,
    HmacAlgorithm,
)
from tokenstation.daemon.token.tlv import encode, parse, parse_one, require

#: The factory customer key (ASCII "TOKEN2MOLTO1-KEY"); the SM4 key is derived from it.
DEFAULT_CUSTOMER_KEY = b"TOKEN2MOLTO1-KEY"
#: Profiles 0..99 on a Molto2v2 (0..49 on the first Molto2).
PROFILES = 100
#: A title holds at most 12 bytes of UTF-8.
TITLE_MAX_BYTES = 12
#: Reader names of real Molto2 devices carry this product word (keyroost issue #21:
#: "TOKEN2" alone also matches Token2's FIDO keys).
READER_WORD = "molto2"

INS_WRITE_TITLE = 0xD5
INS_CHANGE_KEY = 0xD7
INS_FACTORY_RESET = 0x56
INS_DELETE_SEED = 0xE6
INS_SCREEN_LOCK = 0xD8

TAG_PUBLIC_DATA = 0x95
TAG_SEED_INFO = 0x70
TAG_DIGITS = 0x0B
SEED_INFO_LENGTH = 29

#: 90 60: accepted, waiting for the user to press the up-arrow button on the device.
SW_AWAITING_BUTTON = 0x9060
#: 6A 83: referenced data not found (delete on an empty profile).
SW_NOT_FOUND = 0x6A83
#: 6F FB: what a Molto2 answers to the public-data read sent with an Le byte.
SW_CASE4_REFUSED = 0x6FFB

#: Digits a profile can show -> tag 0B value.
DIGITS = (4, 6, 8, 10)

# -- fixed commands -------------------------------------------------------------------------

#: GET INFO as Molto2 hosts send it: 80 41 00 00 00 (case 2, Le = 00).
GET_INFO = Command(CLA_PLAIN, INS_GET_INFO, 0x00, 0x00, le=0x00).encode()
#: GET CHALLENGE, case 2: 80 4B 08 00 00.
GET_CHALLENGE = Command(CLA_PLAIN, INS_GET_CHALLENGE, 0x08, 0x00, le=0x00).encode()
#: Factory reset: 80 56 00 00 00; answered 90 00 / 90 60, committed by the button.
FACTORY_RESET = Command(CLA_PLAIN, INS_FACTORY_RESET, 0x00, 0x00, le=0x00).encode()
#: Screen lock / unlock (firmware 2.1+), as molto2.py frames them. Not used by tokenstation.
SCREEN_LOCK = Command(CLA_PLAIN, INS_SCREEN_LOCK, 0x0C, 0x02, le=0x00).encode()
SCREEN_UNLOCK = Command(CLA_PLAIN, INS_SCREEN_LOCK, 0x0C, 0x02, b"\x01").encode()


def derive_key(customer_key: bytes) -> bytes:
    """The device's SM4 key: SHA1(customer key)[:16] (any length of customer key)."""
    if not customer_key:
        raise InvalidInput("the Molto2 customer key is empty")
    return hashlib.sha1(customer_key).digest()[:BLOCK]


def parse_customer_key(text: str) -> bytes:
    """A customer key as configured: ``hex:`` + hex digits, or the ASCII text itself."""
    if text.startswith("hex:"):
        try:
            raw = bytes.fromhex(text[4:])
        except ValueError:
            raw = b""
        if not raw:
            raise InvalidInput("the Molto2 customer key after hex: is not hex digits")
        return raw
    if not text or not text.isascii() or not text.isprintable():
        raise InvalidInput(
            "the Molto2 customer key must be printable ASCII text, or hex: followed by hex digits"
        )
    return text.encode("ascii")


def check_profile(profile: int) -> int:
    """Refuse a profile number outside 0..99."""
    if not 0 <= profile < PROFILES:
        raise InvalidInput(f"profile {profile} does not exist; a Molto2 has profiles 0 to 99")
    return profile


# -- settings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileSettings:
    """What a Molto2 profile's config write sets besides its clock."""

    hmac: HmacAlgorithm = HmacAlgorithm.SHA1
    period: int = 30
    digits: int = 6
    display_timeout: int = 30

    def __post_init__(self) -> None:
        if self.period not in PERIODS:
            raise InvalidInput(f"time step {self.period} s cannot be burned; a Molto2 takes 30/60")
        if self.digits not in DIGITS:
            raise InvalidInput(f"{self.digits} digits cannot be shown; a Molto2 shows 4, 6, 8, 10")
        if self.display_timeout not in DISPLAY_TIMEOUT_CODES:
            allowed = ", ".join(str(s) for s in DISPLAY_TIMEOUT_CODES)
            raise InvalidInput(f"display timeout {self.display_timeout} s is not one of {allowed}")

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form."""
        return {
            "hmac": self.hmac.label,
            "period": self.period,
            "digits": self.digits,
            "display_timeout": self.display_timeout,
        }


def encode_config(settings: ProfileSettings, utc: int) -> bytes:
    """81 14 [1F 01 dd] [0F 04 time] [86 09 [0A 01 hh] [0B 01 gg] [0D 01 ss]]."""
    _check_time(utc)
    params = (
        encode(TAG_TOTP_HMAC, bytes((int(settings.hmac),)))
        + encode(TAG_DIGITS, bytes((settings.digits,)))
        + encode(TAG_TOTP_STEP, bytes((settings.period,)))
    )
    body = (
        encode(TAG_DISPLAY_TIMEOUT, bytes((DISPLAY_TIMEOUT_CODES[settings.display_timeout],)))
        + encode(TAG_UTC_TIME, utc.to_bytes(4, "big"))
        + encode(TAG_TOTP_PARAM, params)
    )
    return encode(TAG_SYS_CONFIG, body)


def encode_sync(utc: int) -> bytes:
    """The time-only TLV: 81 06 [0F 04 time]."""
    _check_time(utc)
    return encode(TAG_SYS_CONFIG, encode(TAG_UTC_TIME, utc.to_bytes(4, "big")))


def decode_config(data: bytes) -> tuple[ProfileSettings | None, int]:
    """Parse a full or time-only config TLV strictly; settings are None for time-only."""
    items = parse(parse_one(data, TAG_SYS_CONFIG))
    tags = [it.tag for it in items]
    time_bytes = require(items, TAG_UTC_TIME)
    if len(time_bytes) != 4:
        raise MalformedResponse("UTC time must be 4 bytes")
    utc = int.from_bytes(time_bytes, "big")
    if tags == [TAG_UTC_TIME]:
        return None, utc
    if tags != [TAG_DISPLAY_TIMEOUT, TAG_UTC_TIME, TAG_TOTP_PARAM]:
        raise MalformedResponse("config TLV must hold 1F, 0F, 86 in that order, or 0F alone")
    params = parse(require(items, TAG_TOTP_PARAM))
    if [it.tag for it in params] != [TAG_TOTP_HMAC, TAG_DIGITS, TAG_TOTP_STEP]:
        raise MalformedResponse("TOTP parameters must hold 0A, 0B, 0D in that order")
    values = [it.value for it in (items[0], *params)]
    if any(len(v) != 1 for v in values):
        raise MalformedResponse("config values must be one byte each")
    disp, hmac_code, digits, step = (v[0] for v in values)
    by_code = {code: secs for secs, code in DISPLAY_TIMEOUT_CODES.items()}
    try:
        settings = ProfileSettings(HmacAlgorithm(hmac_code), step, digits, by_code[disp])
    except (ValueError, KeyError, InvalidInput) as exc:
        raise MalformedResponse(f"config value out of range: {exc}") from None
    return settings, utc


def _check_time(utc: int) -> None:
    if not 0 <= utc <= U32_MAX:
        raise InvalidInput(f"time {utc} does not fit the token's 32-bit clock")


# -- titles ---------------------------------------------------------------------------------


def fit_title(text: str) -> str:
    """``text`` cut to at most 12 UTF-8 bytes on a character boundary (and stripped)."""
    out = ""
    for ch in text.strip():
        if len((out + ch).encode("utf-8")) > TITLE_MAX_BYTES:
            break
        out += ch
    return out.rstrip()


def title_bytes(title: str) -> bytes:
    """The UTF-8 of a title a profile can hold (1..12 bytes, no NUL), or InvalidInput."""
    raw = title.encode("utf-8")
    if not 1 <= len(raw) <= TITLE_MAX_BYTES or "\x00" in title:
        raise InvalidInput(
            f"title {title!r} is {len(raw)} bytes of UTF-8; a Molto2 title holds 1 to "
            f"{TITLE_MAX_BYTES} bytes and no NUL"
        )
    return raw


# -- per-profile commands -------------------------------------------------------------------


def read_profile(profile: int) -> bytes:
    """Read public data of one profile: 80 41 00 PP 01 70 (case 3 only: no Le)."""
    return Command(
        CLA_PLAIN, INS_GET_INFO, 0x00, check_profile(profile), bytes((TAG_SEED_INFO,))
    ).encode()


def delete_seed(profile: int) -> bytes:
    """Delete one profile's seed: 80 E6 00 PP 00 (keeps the title; 6A 83 when empty)."""
    return Command(CLA_PLAIN, INS_DELETE_SEED, 0x00, check_profile(profile), le=0x00).encode()


def write_seed(key: bytes, profile: int, seed: Secret) -> bytes:
    """84 C5 01 PP Lc SM4-ECB(pad(seed)) MAC: the single-profile framing, profile in P2."""
    return secured(key, INS_WRITE_SEED, 0x01, check_profile(profile), encrypt_seed(key, seed))


def clear_seed(key: bytes, profile: int, length: int = 20) -> bytes:
    """molto2.py's other way to clear a profile: an all-zero seed, zero-padded, no 80 marker.

    tokenstation deletes with :func:`delete_seed`; this is here to reproduce the
    reference tool's bytes and so the simulator understands it.
    """
    if not 1 <= length <= 63:
        raise InvalidInput("an all-zero clearing seed is 1 to 63 bytes")
    plain = bytes(length + (BLOCK - length % BLOCK))
    return secured(key, INS_WRITE_SEED, 0x01, check_profile(profile), sm4_ecb_encrypt(key, plain))


def write_title(key: bytes, profile: int, title: str) -> bytes:
    """84 D5 00 PP 14 SM4-ECB(title 80 00..) MAC. The device stores it in plaintext."""
    body = sm4_ecb_encrypt(key, pad_method2(title_bytes(title)))
    return secured(key, INS_WRITE_TITLE, 0x00, check_profile(profile), body)


def write_config(key: bytes, profile: int, settings: ProfileSettings, utc: int) -> bytes:
    """84 D4 01 PP 1A + full config TLV + MAC (sets the profile's clock and settings)."""
    return secured(
        key, INS_WRITE_CONFIG, 0x01, check_profile(profile), encode_config(settings, utc)
    )


def sync_time(key: bytes, profile: int, utc: int) -> bytes:
    """84 D4 01 PP 0C + 81 06 0F 04 time + MAC: the profile's clock only."""
    return secured(key, INS_WRITE_CONFIG, 0x01, check_profile(profile), encode_sync(utc))


def change_key_body(new_customer_key: bytes) -> bytes:
    """The plaintext of a key change: 00 || SHA1(new)[:16] || 80 || 00*14 (32 bytes)."""
    return b"\x00" + derive_key(new_customer_key) + b"\x80" + bytes(14)


def change_key(key: bytes, new_customer_key: bytes) -> bytes:
    """84 D7 00 00 24 SM4-ECB(00 || K' || 80 00..) MAC; answered 90 60, then the button."""
    body = sm4_ecb_encrypt(key, change_key_body(new_customer_key))
    return secured(key, INS_CHANGE_KEY, 0x00, 0x00, body)


# -- responses ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileInfo:
    """One profile's public data (readable without the key).

    ``time_a`` / ``time_b`` are the two 4-byte fields Token2's manual names RTCTime
    and TimeCfg; their meaning on real hardware is not confirmed. Empty profiles may
    report default algorithm/step/digits: only ``seed_present`` tells occupancy.
    """

    index: int
    flag: int
    title: str
    time_a: int
    time_b: int
    algorithm: int
    period: int
    digits: int
    seed_present: bool

    @property
    def hmac(self) -> HmacAlgorithm | None:
        """The algorithm as an enum, or None for a code this host does not know."""
        try:
            return HmacAlgorithm(self.algorithm)
        except ValueError:
            return None

    def settings(self, display_timeout: int = 30) -> ProfileSettings | None:
        """The profile's settings as read, or None when a value is out of range."""
        hmac = self.hmac
        if hmac is None:
            return None
        try:
            return ProfileSettings(hmac, self.period, self.digits, display_timeout)
        except InvalidInput:
            return None

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form (nothing here is secret)."""
        hmac = self.hmac
        return {
            "profile": self.index,
            "title": self.title,
            "seed_present": self.seed_present,
            "hmac": hmac.label if hmac is not None else f"code {self.algorithm}",
            "period": self.period,
            "digits": self.digits,
        }


def parse_profile(index: int, data: bytes) -> ProfileInfo:
    """Parse ``95 1F 70 1D`` + 29 bytes strictly (anything else is MalformedResponse).

    The title is the 16-byte field with trailing zeros stripped, decoded as UTF-8 with
    replacement characters (display never fails on odd bytes).
    """
    if len(data) < 4:
        raise MalformedResponse(f"profile {index}: public data of {len(data)} bytes is truncated")
    if data[0] != TAG_PUBLIC_DATA or data[2] != TAG_SEED_INFO:
        raise MalformedResponse(
            f"profile {index}: public data starts {data[:4].hex(' ')}, expected 95 1F 70 1D"
        )
    if data[1] != SEED_INFO_LENGTH + 2 or data[3] != SEED_INFO_LENGTH or len(data) != 33:
        raise MalformedResponse(
            f"profile {index}: public data lengths are wrong ({len(data)} bytes, "
            f"header {data[:4].hex(' ')})"
        )
    body = data[4:]
    return ProfileInfo(
        index=index,
        flag=body[0],
        title=body[1:17].rstrip(b"\x00").decode("utf-8", errors="replace"),
        time_a=int.from_bytes(body[17:21], "big"),
        time_b=int.from_bytes(body[21:25], "big"),
        algorithm=body[25],
        period=body[26],
        digits=body[27],
        seed_present=body[28] != 0,
    )


def encode_profile(info: ProfileInfo) -> bytes:
    """The public-data answer a Molto2 sends for ``info`` (used by the simulator)."""
    title = info.title.encode("utf-8")[:16].ljust(16, b"\x00")
    body = (
        bytes((info.flag,))
        + title
        + info.time_a.to_bytes(4, "big")
        + info.time_b.to_bytes(4, "big")
        + bytes((info.algorithm, info.period, info.digits, int(info.seed_present)))
    )
    return encode(TAG_PUBLIC_DATA, encode(TAG_SEED_INFO, body))


def parse_device_info(data: bytes) -> PublicInfo:
    """GET INFO: the tagged form (95 LL 02 NN serial 11 04 time) or the untagged one.

    The untagged form (00 00 00 NN serial 00 00 time) is what Token2's molto2.py test
    feeds its offset parser. Both are checked strictly: header, separator, length.
    """
    if data[:1] == bytes((TAG_PUBLIC_DATA,)):
        return parse_info(data)
    if len(data) < 4 or data[:3] != b"\x00\x00\x00":
        raise MalformedResponse(f"device info starts {data[:4].hex(' ')}; not a Molto2 answer")
    n = data[3]
    if len(data) != n + 10 or data[4 + n : 6 + n] != b"\x00\x00":
        raise MalformedResponse(f"device info of {len(data)} bytes does not fit serial length {n}")
    raw = data[4 : 4 + n]
    if not raw or not all(0x20 < b < 0x7F for b in raw):
        raise MalformedResponse("serial is empty or not printable ASCII")
    return PublicInfo(raw.decode("ascii"), int.from_bytes(data[6 + n :], "big"))


def is_molto2_reader(name: str) -> bool:
    """True for a reader whose name carries the Molto2 product word."""
    return READER_WORD in name.lower()
