"""Random APDUs through the real card link: the simulator answers every one and survives.

The vpcd side is played by a plain TCP socket in this test (the framing is vpcd's:
a big-endian length, then the payload); the card side is the real VpcdLink and the
real simulated token. Seeded and bounded (TOKENSTATION_FUZZ_SECONDS per personality,
10 s by default), so a failure replays with the same inputs.
"""

from __future__ import annotations

import os
import random
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from tokenstation.daemon.simulator.token import PROFILES, SimulatedToken
from tokenstation.daemon.simulator.vpcd import VpcdLink, contactless_atr
from tokenstation.daemon.token import commands, crypto

KEY = crypto.TOKEN2_KEY
SECONDS = float(os.environ.get("TOKENSTATION_FUZZ_SECONDS", "10"))
MAX_APDUS = 200_000
INS = (0x41, 0x4B, 0xCE, 0xD4, 0xC5, 0xA4, 0xCA, 0x00, 0xFF)
CLA = (0x00, 0x80, 0x84, 0xFF)


class FakeVpcd:
    """The reader-driver end of a vpcd slot: accepts the card and exchanges frames."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.conn: socket.socket | None = None

    def accept(self) -> None:
        self.server.settimeout(5)
        self.conn, _ = self.server.accept()
        self.conn.settimeout(5)
        self.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def exchange(self, payload: bytes) -> bytes:
        assert self.conn is not None
        self.conn.sendall(struct.pack(">H", len(payload)) + payload)
        (n,) = struct.unpack(">H", self._recv(2))
        return self._recv(n)

    def control(self, code: int) -> bytes:
        """A control message; only 4 (get ATR) is answered."""
        assert self.conn is not None
        self.conn.sendall(struct.pack(">H", 1) + bytes((code,)))
        if code != 4:
            return b""
        (n,) = struct.unpack(">H", self._recv(2))
        return self._recv(n)

    def _recv(self, n: int) -> bytes:
        assert self.conn is not None
        buf = b""
        while len(buf) < n:
            chunk = self.conn.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("the card closed the link")
            buf += chunk
        return buf

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.server.close()


@pytest.fixture
def vpcd() -> Iterator[FakeVpcd]:
    fake = FakeVpcd()
    yield fake
    fake.close()


def random_apdu(rng: random.Random, token: SimulatedToken) -> bytes:
    """Mostly near-miss APDUs (known classes and instructions), some pure noise."""
    roll = rng.random()
    if roll < 0.1:
        return rng.randbytes(rng.choice((0, 2, 3, rng.randrange(0, 300))))
    if roll < 0.25 and token.challenge is not None:
        return commands.authenticate(KEY, token.challenge)  # get past the login sometimes
    if roll < 0.45:
        # A write with a valid MAC and a random body: reaches the config and seed parsers.
        body = rng.randbytes(rng.choice((0, 1, 16, 19, 32, 48, 64, rng.randrange(0, 200))))
        ins = rng.choice((0xD4, 0xC5, rng.randrange(256)))
        return commands.secured(KEY, ins, rng.choice((0, 1)), 0, body)
    header = bytes((rng.choice(CLA), rng.choice(INS), rng.randrange(256), rng.randrange(256)))
    body_len = rng.randrange(0, 270)
    body = rng.randbytes(body_len)
    if body_len and rng.random() < 0.5:
        lc = min(body_len - 1, 255)
        body = bytes((lc,)) + body[1 : 1 + lc] + body[1 + lc : 2 + lc]  # Lc-consistent-ish
    return header + body


@pytest.mark.parametrize("profile", PROFILES)
def test_random_apdus_never_crash_the_card_and_the_link_keeps_answering(
    vpcd: FakeVpcd, profile: str
) -> None:
    rng = random.Random(f"tokenstation-fuzz-{profile}")
    token = SimulatedToken(profile=profile, random=rng.randbytes)
    link = VpcdLink(token, contactless_atr(b"TS-SIM01"), vpcd.port)
    link.insert()
    vpcd.accept()
    deadline = time.monotonic() + SECONDS
    sent = 0
    try:
        while sent < MAX_APDUS and time.monotonic() < deadline:
            if rng.random() < 0.01:
                code = rng.choice((0, 1, 2, 4, rng.randrange(256)))
                assert (vpcd.control(code) != b"") is (code == 4)
                continue
            apdu = random_apdu(rng, token)
            if len(apdu) == 1:
                continue  # one byte is a vpcd control message, not an APDU
            reply = vpcd.exchange(apdu)
            assert len(reply) >= 2, f"APDU {apdu.hex()} got {reply.hex()}"
            sent += 1
        assert token.internal_errors == 0
        info = vpcd.exchange(commands.GET_INFO)
        assert info[-2:] == b"\x90\x00"
        assert commands.parse_info(info[:-2]).serial == token.serial
        assert link.inserted
    finally:
        link.remove()
    assert sent > 1000  # the fuzz really ran
