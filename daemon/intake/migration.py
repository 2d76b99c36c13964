"""Google Authenticator exports: ``otpauth-migration://offline?data=...`` (pure, no I/O).

The data is Base64 of a protobuf MigrationPayload (the community schema, anchors.md
section 5). It is small and fixed, so it is decoded here by hand: varints (64-bit,
negative batch ids sign-extended) and length-delimited fields; unknown fields are
skipped. A ``+`` that query parsing turned into a space is put back.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from tokenstation.daemon.intake.otpauth import OtpAccount
from tokenstation.daemon.token.errors import InvalidInput
from tokenstation.daemon.token.secret import Secret

ALGORITHMS = {0: "SHA1", 1: "SHA1", 2: "SHA256", 3: "SHA512", 4: "MD5"}
DIGITS = {0: 6, 1: 6, 2: 8, 3: 7}
TYPES = {0: "totp", 1: "hotp", 2: "totp"}


@dataclass(frozen=True)
class MigrationBatch:
    """One export QR: its accounts and where it stands in a multi-QR export."""

    accounts: tuple[OtpAccount, ...]
    version: int
    batch_size: int
    batch_index: int
    batch_id: int


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise InvalidInput("data: the export payload is truncated")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise InvalidInput("data: a number in the export payload is too long")


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs; varints as int, length-delimited as bytes."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            out.append((number, value))
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > len(buf):
                raise InvalidInput("data: the export payload is truncated")
            out.append((number, buf[pos : pos + length]))
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise InvalidInput(f"data: unexpected protobuf wire type {wire}")
    if pos != len(buf):
        raise InvalidInput("data: the export payload is truncated")
    return out


def _account(buf: bytes) -> OtpAccount:
    secret = b""
    name = issuer = ""
    algorithm = digits = otp_type = 0
    for number, value in _fields(buf):
        if number == 1 and isinstance(value, bytes):
            secret = value
        elif number == 2 and isinstance(value, bytes):
            name = value.decode("utf-8", "replace")
        elif number == 3 and isinstance(value, bytes):
            issuer = value.decode("utf-8", "replace")
        elif number == 4 and isinstance(value, int):
            algorithm = value
        elif number == 5 and isinstance(value, int):
            digits = value
        elif number == 6 and isinstance(value, int):
            otp_type = value
    label_issuer, _, account = name.partition(":") if ":" in name else ("", "", name)
    warnings = []
    if algorithm not in ALGORITHMS or digits not in DIGITS or otp_type not in TYPES:
        warnings.append("the export uses values this decoder does not know")
    if not secret:
        raise InvalidInput(f"secret: the export entry {name!r} has no secret")
    return OtpAccount(
        type=TYPES.get(otp_type, f"type {otp_type}"),
        issuer=issuer.strip() or label_issuer.strip(),
        account=account.strip(),
        secret=Secret(secret),
        algorithm=ALGORITHMS.get(algorithm, f"algorithm {algorithm}"),
        digits=DIGITS.get(digits, 0),
        period=30,  # exports carry no period; Google Authenticator uses 30 s
        warnings=tuple(warnings),
    )


def parse_migration(uri: str) -> MigrationBatch:
    """Decode an export URI; InvalidInput names what is wrong."""
    parts = urlsplit(uri.strip())
    if parts.scheme.lower() != "otpauth-migration":
        raise InvalidInput("not an otpauth-migration:// URI")
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    data = params.get("data", "").strip()
    if not data:
        raise InvalidInput("data: missing from the export URI")
    data = data.replace(" ", "+")  # '+' read as a space by query parsing
    data = data.replace("-", "+").replace("_", "/")  # tolerate the URL-safe alphabet
    try:
        raw = base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("data: not valid Base64") from None
    accounts: list[OtpAccount] = []
    version = batch_size = batch_index = batch_id = 0
    for number, value in _fields(raw):
        if number == 1 and isinstance(value, bytes):
            accounts.append(_account(value))
        elif number == 2 and isinstance(value, int):
            version = value
        elif number == 3 and isinstance(value, int):
            batch_size = value
        elif number == 4 and isinstance(value, int):
            batch_index = value
        elif number == 5 and isinstance(value, int):
            batch_id = _signed(value)
    if not accounts:
        raise InvalidInput("data: the export holds no accounts")
    return MigrationBatch(tuple(accounts), version, batch_size, batch_index, batch_id)


def encode_migration(
    accounts: list[tuple[bytes, str, str, int, int, int]], batch_id: int = -1
) -> str:
    """Build an export URI (secret, name, issuer, algorithm, digits, type) for tests and demos."""

    def varint(n: int) -> bytes:
        n &= (1 << 64) - 1
        out = bytearray()
        while True:
            b = n & 0x7F
            n >>= 7
            out.append(b | (0x80 if n else 0))
            if not n:
                return bytes(out)

    def field(number: int, value: int | bytes) -> bytes:
        if isinstance(value, int):
            return varint(number << 3) + varint(value)
        return varint(number << 3 | 2) + varint(len(value)) + value

    payload = b""
    for secret, name, issuer, algorithm, digits, otp_type in accounts:
        body = (
            field(1, secret)
            + field(2, name.encode())
            + field(3, issuer.encode())
            + field(4, algorithm)
            + field(5, digits)
            + field(6, otp_type)
        )
        payload += field(1, body)
    payload += field(2, 1) + field(3, 1) + field(4, 0) + field(5, batch_id)
    from urllib.parse import quote

    return "otpauth-migration://offline?data=" + quote(base64.b64encode(payload).decode(), safe="")
