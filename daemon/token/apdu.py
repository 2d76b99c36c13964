"""Short ISO 7816-4 command and response APDUs."""

from __future__ import annotations

from dataclasses import dataclass

from tokenstation.daemon.token.errors import MalformedResponse


@dataclass(frozen=True)
class Command:
    """A short command APDU. ``le`` None means no Le byte (case 1 or 3)."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None

    def encode(self) -> bytes:
        """The APDU bytes as sent to the card."""
        out = bytes((self.cla, self.ins, self.p1, self.p2))
        if self.data:
            if len(self.data) > 255:
                raise ValueError("short APDU data is limited to 255 bytes")
            out += bytes((len(self.data),)) + self.data
        if self.le is not None:
            out += bytes((self.le & 0xFF,))
        return out

    @classmethod
    def decode(cls, raw: bytes) -> Command:
        """Parse a short command APDU (cases 1, 2, 3 and 4).

        Raises ValueError on a length that fits none of them.
        """
        if len(raw) < 4:
            raise ValueError(f"APDU of {len(raw)} bytes is shorter than a header")
        cla, ins, p1, p2 = raw[0], raw[1], raw[2], raw[3]
        body = raw[4:]
        if not body:
            return cls(cla, ins, p1, p2)
        if len(body) == 1:
            return cls(cla, ins, p1, p2, le=body[0])
        lc = body[0]
        if lc == 0:
            raise ValueError("extended-length APDUs are not used by this protocol")
        if len(body) == 1 + lc:
            return cls(cla, ins, p1, p2, data=bytes(body[1:]))
        if len(body) == 2 + lc:
            return cls(cla, ins, p1, p2, data=bytes(body[1 : 1 + lc]), le=body[-1])
        raise ValueError(f"Lc {lc} does not match the {len(body) - 1} bytes after it")


@dataclass(frozen=True)
class Response:
    """A response APDU: data and the two status bytes."""

    data: bytes
    sw: int

    @classmethod
    def decode(cls, raw: bytes) -> Response:
        """Split the status word off a response."""
        if len(raw) < 2:
            raise MalformedResponse(f"response of {len(raw)} bytes has no status word")
        return cls(bytes(raw[:-2]), (raw[-2] << 8) | raw[-1])

    def encode(self) -> bytes:
        """The response bytes as a card sends them."""
        return self.data + self.sw.to_bytes(2, "big")

    @property
    def ok(self) -> bool:
        """True for 90 00."""
        return self.sw == 0x9000
