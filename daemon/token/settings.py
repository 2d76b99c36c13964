"""The token's write-only configuration: HMAC, time step, display timeout (sections 2.6, 4)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from tokenstation.daemon.token.errors import InvalidInput, MalformedResponse
from tokenstation.daemon.token.limits import PERIODS as PERIODS  # noqa: PLC0414 (re-exported, as mypy strict wants)
from tokenstation.daemon.token.tlv import Tlv, encode, parse, parse_one, require

TAG_SYS_CONFIG = 0x81
TAG_DISPLAY_TIMEOUT = 0x1F
TAG_UTC_TIME = 0x0F
TAG_TOTP_PARAM = 0x86
TAG_TOTP_HMAC = 0x0A
TAG_TOTP_STEP = 0x0D

U32_MAX = 0xFFFFFFFF


class HmacAlgorithm(IntEnum):
    """Tag 0A values."""

    SHA1 = 0x01
    SHA256 = 0x02

    @property
    def label(self) -> str:
        """Lower-case name as the CLI and JSON spell it."""
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> HmacAlgorithm:
        """Accept sha1 / SHA-1 / sha256 / SHA-256 in any case."""
        key = text.strip().upper().replace("-", "")
        try:
            return cls[key]
        except KeyError:
            raise InvalidInput(
                f"algorithm {text!r} cannot be burned; these tokens take SHA1 or SHA256"
            ) from None


#: Display timeout in seconds -> tag 1F code (section 4.5).
DISPLAY_TIMEOUT_CODES: dict[int, int] = {15: 0x00, 30: 0x01, 60: 0x02, 120: 0x03}


@dataclass(frozen=True)
class TokenSettings:
    """What a config write sets besides the clock. It cannot be read back from the token."""

    hmac: HmacAlgorithm = HmacAlgorithm.SHA1
    period: int = 30
    display_timeout: int = 30

    def __post_init__(self) -> None:
        if self.period not in PERIODS:
            raise InvalidInput(
                f"time step {self.period} s cannot be burned; these tokens take 30 or 60 s"
            )
        if self.display_timeout not in DISPLAY_TIMEOUT_CODES:
            allowed = ", ".join(str(s) for s in DISPLAY_TIMEOUT_CODES)
            raise InvalidInput(
                f"display timeout {self.display_timeout} s is not one of {allowed} s"
            )

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form."""
        return {
            "hmac": self.hmac.label,
            "period": self.period,
            "display_timeout": self.display_timeout,
        }


def encode_config(settings: TokenSettings, utc: int) -> bytes:
    """The 19-byte config TLV: 81 11 [1F 01 dd] [0F 04 time] [86 06 [0A 01 hh] [0D 01 ss]]."""
    if not 0 <= utc <= U32_MAX:
        raise InvalidInput(f"time {utc} does not fit the token's 32-bit clock")
    params = encode(TAG_TOTP_HMAC, bytes((int(settings.hmac),))) + encode(
        TAG_TOTP_STEP, bytes((settings.period,))
    )
    body = (
        encode(TAG_DISPLAY_TIMEOUT, bytes((DISPLAY_TIMEOUT_CODES[settings.display_timeout],)))
        + encode(TAG_UTC_TIME, utc.to_bytes(4, "big"))
        + encode(TAG_TOTP_PARAM, params)
    )
    return encode(TAG_SYS_CONFIG, body)


def decode_config(data: bytes) -> tuple[TokenSettings, int]:
    """Parse a config TLV strictly (as the simulated token does); returns settings and time."""
    items = parse(parse_one(data, TAG_SYS_CONFIG))
    if sorted(it.tag for it in items) != sorted(
        (TAG_DISPLAY_TIMEOUT, TAG_UTC_TIME, TAG_TOTP_PARAM)
    ):
        raise MalformedResponse("config TLV must hold exactly tags 1F, 0F and 86")
    disp = _single_byte(require(items, TAG_DISPLAY_TIMEOUT), "display timeout")
    time_bytes = require(items, TAG_UTC_TIME)
    if len(time_bytes) != 4:
        raise MalformedResponse("UTC time must be 4 bytes")
    params: list[Tlv] = parse(require(items, TAG_TOTP_PARAM))
    if sorted(it.tag for it in params) != [TAG_TOTP_HMAC, TAG_TOTP_STEP]:
        raise MalformedResponse("TOTP parameters must hold exactly tags 0A and 0D")
    hmac_code = _single_byte(require(params, TAG_TOTP_HMAC), "HMAC")
    step = _single_byte(require(params, TAG_TOTP_STEP), "time step")
    by_code = {code: secs for secs, code in DISPLAY_TIMEOUT_CODES.items()}
    if disp not in by_code:
        raise MalformedResponse(f"display timeout code {disp:#04x} is out of range")
    try:
        hmac = HmacAlgorithm(hmac_code)
    except ValueError:
        raise MalformedResponse(f"HMAC code {hmac_code:#04x} is out of range") from None
    if step not in PERIODS:
        raise MalformedResponse(f"time step {step:#04x} is out of range")
    return TokenSettings(hmac, step, by_code[disp]), int.from_bytes(time_bytes, "big")


def _single_byte(value: bytes, what: str) -> int:
    if len(value) != 1:
        raise MalformedResponse(f"{what} must be one byte, got {len(value)}")
    return value[0]
