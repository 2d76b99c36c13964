"""The link between a virtual card and vsmartcard's vpcd reader driver.

vpcd is the TCP server (one port per reader slot); the card connects to insert
itself and closes the connection to leave. Frames are a big-endian uint16 length
then the payload; one-byte payloads are control messages (0 power off, 1 power on,
2 reset, 4 get ATR), longer ones are command APDUs answered by the response APDU.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)

#: How long a card waits for vpcd at the first placement before it says why not.
PLACE_TIMEOUT_S = 5.0

CTRL_OFF, CTRL_ON, CTRL_RESET, CTRL_ATR = 0, 1, 2, 4
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def contactless_atr(historical: bytes) -> bytes:
    """The PC/SC part-3 ATR of an ISO 14443-4 card: 3B 8n 80 01 <historical> TCK."""
    if len(historical) > 15:
        raise ValueError("at most 15 historical bytes")
    body = bytes((0x3B, 0x80 | len(historical), 0x80, 0x01)) + historical
    tck = 0
    for b in body[1:]:
        tck ^= b
    return body + bytes((tck,))


class SlotProblem(RuntimeError):
    """The card could not be placed: nothing listens on the port, or the slot is taken."""


class Card(Protocol):
    """What the link needs from a card."""

    def process(self, capdu: bytes) -> bytes | None:
        """Answer an APDU; None drops the field (the card leaves the reader)."""
        ...

    def field_reset(self) -> None:
        """The reader powered the card on or off or reset it."""
        ...


class VpcdLink:
    """Insert a card into a vpcd slot (connect) and remove it (close)."""

    def __init__(
        self,
        card: Card,
        atr: bytes,
        port: int,
        host: str = "127.0.0.1",
        on_removed: Callable[[], None] | None = None,
    ) -> None:
        self.card = card
        self.atr = atr
        self.host = host
        self.port = port
        self._on_removed = on_removed
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        #: Set once vpcd has sent the card its first message on this connection (vpcd
        #: accepts one card per slot; a second one waits in the kernel's backlog unheard).
        self.greeted = threading.Event()
        #: When vpcd first spoke to the card after its last insertion (host time).
        self.greeted_at: float | None = None

    @property
    def inserted(self) -> bool:
        """True while connected to vpcd."""
        return self._sock is not None

    def insert(self, timeout: float = 5.0) -> None:
        """Connect to vpcd. Note vpcd notices it only at its next 400 ms poll."""
        with self._lock:
            if self._sock is not None:
                return
            sock = socket.create_connection((self.host, self.port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(None)
            self.greeted.clear()
            self._sock = sock
            self._thread = threading.Thread(
                target=self._serve, args=(sock,), name=f"vpcd-card:{self.port}", daemon=True
            )
            self._thread.start()

    def remove(self) -> None:
        """Close the connection: vpcd reports the card gone at its next poll."""
        with self._lock:
            sock, self._sock = self._sock, None
            thread, self._thread = self._thread, None
        if sock is not None:
            _close(sock)
        if thread is not None and thread is not threading.current_thread():
            thread.join(2)

    def _serve(self, sock: socket.socket) -> None:
        try:
            while True:
                (length,) = struct.unpack(">H", _recv_exact(sock, 2))
                msg = _recv_exact(sock, length)
                if not self.greeted.is_set():
                    self.greeted_at = time.time()  # the reader sees the card from now
                self.greeted.set()
                if length == 1:
                    self._control(sock, msg[0])
                    continue
                try:
                    reply = self.card.process(msg)
                except Exception:  # a card model bug must not take the link down
                    log.exception("the simulated card failed on an APDU; answering 6F 00")
                    reply = b"\x6f\x00"
                if reply is None:
                    log.info("simulated field loss: card leaves the reader")
                    break
                _send(sock, reply)
        except (ConnectionError, OSError, struct.error):
            pass
        finally:
            with self._lock:
                mine = self._sock is sock
                if mine:
                    self._sock = None
            if mine:
                _close(sock)
                if self._on_removed is not None:
                    self._on_removed()

    def place(self, timeout: float = PLACE_TIMEOUT_S) -> None:
        """Insert and wait until vpcd has taken the card; :class:`SlotProblem` if not.

        connect() alone proves nothing: the kernel completes it before vpcd accepts, and
        a slot holding another card never accepts a second one.
        """
        deadline = time.monotonic() + timeout
        # A listener that never answers (a connect that times out, or one that completes
        # and then stays silent) is a vpcd slot busy with another card; a refusal is no vpcd.
        listener = False
        while time.monotonic() < deadline:
            if not self.inserted:
                try:
                    self.insert(timeout=max(0.1, min(1.0, deadline - time.monotonic())))
                    listener = True
                except ConnectionRefusedError:
                    time.sleep(0.2)
                    continue
                except OSError:  # timed out: the listener's queue is full
                    listener = True
                    continue
            if self.greeted.wait(max(0.0, deadline - time.monotonic())):
                return
        self.remove()
        where = f"{self.host}:{self.port}"
        if listener:
            raise SlotProblem(
                f"vpcd at {where} took the connection but never spoke to the card in "
                f"{timeout:g} s: that reader slot already holds a card (another `simulate` "
                "on the same port?). Stop that one, or use another slot's port."
            )
        raise SlotProblem(
            f"nothing listens on {where} (waited {timeout:g} s): is pcscd running with the "
            "vpcd driver, on this port? Debian's vpcd listens on 35963 and 35964; "
            "`tokenstation lab` starts a private pcscd and prints its ports."
        )

    def _control(self, sock: socket.socket, code: int) -> None:
        if code == CTRL_ATR:
            _send(sock, self.atr)
        elif code in (CTRL_ON, CTRL_OFF, CTRL_RESET):
            self.card.field_reset()


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        if _QUICKACK is not None:
            # Debian's vpcd 0.8 sends length and payload in two writes: without a quick
            # ACK each APDU waits ~44 ms for delayed ACK. Not sticky: re-arm each recv.
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("vpcd closed the connection")
        buf += chunk
    return buf


def _send(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(struct.pack(">H", len(payload)) + payload)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
