"""ISO 7816-4 SIMPLE-TLV: one-byte tags, one-byte lengths (or FF + two bytes)."""

from __future__ import annotations

from dataclasses import dataclass

from tokenstation.daemon.token.errors import MalformedResponse


@dataclass(frozen=True)
class Tlv:
    """One tag-length-value item."""

    tag: int
    value: bytes

    def encode(self) -> bytes:
        """The item as bytes."""
        return encode(self.tag, self.value)


def encode(tag: int, value: bytes) -> bytes:
    """Encode one SIMPLE-TLV item."""
    if not 0x01 <= tag <= 0xFE:
        raise ValueError(f"SIMPLE-TLV tag must be 01..FE, got {tag:#04x}")
    n = len(value)
    if n < 0xFF:
        return bytes((tag, n)) + value
    if n <= 0xFFFF:
        return bytes((tag, 0xFF, n >> 8, n & 0xFF)) + value
    raise ValueError("SIMPLE-TLV value longer than 65535 bytes")


def parse(data: bytes) -> list[Tlv]:
    """Parse a concatenation of SIMPLE-TLV items; any truncation or junk is an error."""
    items: list[Tlv] = []
    i = 0
    while i < len(data):
        tag = data[i]
        if tag in (0x00, 0xFF):
            raise MalformedResponse(f"invalid TLV tag {tag:#04x} at offset {i}")
        if i + 1 >= len(data):
            raise MalformedResponse(f"TLV tag {tag:#04x} at offset {i} has no length")
        n = data[i + 1]
        start = i + 2
        if n == 0xFF:
            if i + 3 >= len(data):
                raise MalformedResponse(f"TLV tag {tag:#04x} has a truncated 3-byte length")
            n = (data[i + 2] << 8) | data[i + 3]
            start = i + 4
        end = start + n
        if end > len(data):
            raise MalformedResponse(
                f"TLV tag {tag:#04x} says {n} bytes but only {len(data) - start} follow"
            )
        items.append(Tlv(tag, bytes(data[start:end])))
        i = end
    return items


def parse_one(data: bytes, tag: int) -> bytes:
    """Parse ``data`` as exactly one item with ``tag`` and return its value."""
    items = parse(data)
    if len(items) != 1 or items[0].tag != tag:
        found = " ".join(f"{it.tag:02X}" for it in items) or "nothing"
        raise MalformedResponse(f"expected one TLV with tag {tag:02X}, found {found}")
    return items[0].value


def require(items: list[Tlv], tag: int) -> bytes:
    """The value of the single item with ``tag`` in ``items``."""
    found = [it.value for it in items if it.tag == tag]
    if len(found) != 1:
        raise MalformedResponse(f"expected exactly one TLV tag {tag:02X}, found {len(found)}")
    return found[0]
