"""A card that is not a token (think FIDO key or bank card): it refuses every command."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from pathlib import Path

from .runner import write_json_atomic
from .vpcd import VpcdLink, contactless_atr

#: Historical bytes that look like a FIDO authenticator's, not a token's.
FOREIGN_HISTORICAL_BYTES = b"FIDO_2_0"


class ForeignCard:
    """Answers every APDU with 6E 00 (class not supported) and counts them."""

    def __init__(self) -> None:
        self.apdus = 0

    def process(self, capdu: bytes) -> bytes | None:
        """Refuse."""
        self.apdus += 1
        return b"\x6e\x00"

    def field_reset(self) -> None:
        """Nothing to reset."""


def run_foreign(port: int, host: str = "127.0.0.1", state_file: Path | None = None) -> int:
    """Keep a foreign card in the vpcd slot until SIGTERM/SIGINT."""
    card = ForeignCard()
    link = VpcdLink(card, contactless_atr(FOREIGN_HISTORICAL_BYTES), port, host)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _s, _f: stop.set())
    print(f"foreign (non-token) card for vpcd at {host}:{port}", flush=True)
    try:
        while not stop.is_set():
            if not link.inserted:
                with contextlib.suppress(OSError):
                    link.insert(timeout=1.0)
            if state_file is not None:
                write_json_atomic(
                    state_file,
                    {"kind": "foreign", "apdus": card.apdus, "host_time": time.time()},
                )
            stop.wait(0.1)
    finally:
        link.remove()
    return 0
