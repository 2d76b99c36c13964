"""Cards that are not tokens: a plain one that refuses everything, and a FIDO security key.

Both log every APDU they receive (in memory and in the state file), so a test can
prove what reached them: nothing but GET INFO and read-only SELECTs.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from pathlib import Path

from tokenstation.daemon.simulator.runner import write_json_atomic
from tokenstation.daemon.simulator.vpcd import VpcdLink, contactless_atr
from tokenstation.daemon.token import commands

#: Historical bytes that look like a FIDO authenticator's, not a token's.
FOREIGN_HISTORICAL_BYTES = b"FIDO_2_0"
KINDS = ("plain", "fido", "oath")

#: What a FIDO key answers to the FIDO applet's SELECT (CTAP over NFC): its U2F version.
FIDO_SELECT_ANSWER = b"U2F_V2"
#: A YKOATH SELECT answer: version 5.4.3 (tag 79) and an 8-byte device name (tag 71).
OATH_SELECT_ANSWER = bytes.fromhex("7903050403") + bytes.fromhex("7108") + b"SIMFIDO1"

SW_OK = b"\x90\x00"
SW_NOT_FOUND = b"\x6a\x82"
SW_INS = b"\x6d\x00"
SW_CLA = b"\x6e\x00"


class ForeignCard:
    """Answers like a card that is not a token; ``kind="fido"`` is a FIDO2 + OATH key.

    Every APDU is kept in ``received`` (hex): commands sent to it, never answers.
    """

    def __init__(self, kind: str = "plain") -> None:
        if kind not in KINDS:
            raise ValueError(f"foreign card kind must be one of {KINDS}, not {kind!r}")
        self.kind = kind
        self.apdus = 0
        self.received: list[str] = []
        self._lock = threading.Lock()

    def process(self, capdu: bytes) -> bytes | None:
        """Refuse, or (as a FIDO key) answer the two applets' SELECTs."""
        with self._lock:
            self.apdus += 1
            self.received.append(bytes(capdu).hex())
        if self.kind == "plain" or len(capdu) < 4:
            return SW_CLA
        if capdu[0] != 0x00:
            return SW_CLA
        if capdu[1] != commands.INS_SELECT:
            return SW_INS
        if len(capdu) < 5 or (capdu[2], capdu[3]) != (0x04, 0x00):
            return SW_NOT_FOUND
        aid = bytes(capdu[5 : 5 + capdu[4]])
        if aid == commands.FIDO_AID and self.kind == "fido":  # "oath": FIDO switched off
            return FIDO_SELECT_ANSWER + SW_OK
        if aid == commands.YKOATH_AID:
            return OATH_SELECT_ANSWER + SW_OK
        return SW_NOT_FOUND

    def field_reset(self) -> None:
        """Nothing to reset."""

    def snapshot(self) -> dict[str, object]:
        """The state file's content."""
        with self._lock:
            received = list(self.received)
        return {
            "kind": "foreign",
            "foreign_kind": self.kind,
            "apdus": len(received),
            "received": received,
            "host_time": time.time(),
        }


def run_foreign(
    port: int, host: str = "127.0.0.1", state_file: Path | None = None, kind: str = "plain"
) -> int:
    """Keep a foreign card in the vpcd slot until SIGTERM/SIGINT."""
    card = ForeignCard(kind)
    link = VpcdLink(card, contactless_atr(FOREIGN_HISTORICAL_BYTES), port, host)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _s, _f: stop.set())
    what = "FIDO2 security key" if kind == "fido" else "foreign (non-token) card"
    print(f"{what} for vpcd at {host}:{port}", flush=True)
    try:
        link.place()
        while not stop.is_set():
            if not link.inserted:
                with contextlib.suppress(OSError):
                    link.insert(timeout=1.0)
            if state_file is not None:
                write_json_atomic(state_file, card.snapshot())
            stop.wait(0.1)
    finally:
        link.remove()
    return 0
