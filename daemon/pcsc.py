"""PC/SC through pyscard: the only module that imports ``smartcard``.

- :func:`list_readers` and :func:`readers_with_card` for one-shot commands;
- :class:`PcscConnection`, a card connection with the ``transmit`` the token layer
  needs and an APDU trace at the TRAFFIC level;
- :class:`PresenceMonitor`, a thread on ``SCardGetStatusChange`` (not pyscard's
  CardMonitor) that reports readers and cards coming and going, and re-establishes
  its context with back-off when pcscd stops or restarts instead of dying.

``PCSCLITE_CSOCK_NAME`` is read by libpcsclite itself at the first call in a process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from smartcard import scard

from tokenstation.daemon.events import ReaderChange
from tokenstation.daemon.log import TRAFFIC
from tokenstation.daemon.token.errors import CardLost, ReaderUnavailable, TransportError
from tokenstation.daemon.token.problem import ProblemKind

log = logging.getLogger(__name__)

PNP_NOTIFICATION = "\\\\?PnP?\\Notification"
_U32 = 0xFFFFFFFF

_SERVICE_GONE = {
    scard.SCARD_E_NO_SERVICE & _U32,
    scard.SCARD_E_SERVICE_STOPPED & _U32,
    scard.SCARD_E_INVALID_HANDLE & _U32,
    scard.SCARD_F_COMM_ERROR & _U32,
    scard.SCARD_E_NO_READERS_AVAILABLE & _U32,
    scard.SCARD_E_UNKNOWN_READER & _U32,
    scard.SCARD_E_READER_UNAVAILABLE & _U32,
}
_CARD_GONE = {
    scard.SCARD_W_REMOVED_CARD & _U32,
    scard.SCARD_E_NO_SMARTCARD & _U32,
    scard.SCARD_W_UNPOWERED_CARD & _U32,
    scard.SCARD_W_RESET_CARD & _U32,
    scard.SCARD_E_NOT_TRANSACTED & _U32,
    scard.SCARD_W_UNRESPONSIVE_CARD & _U32,
}


class PcscUnavailable(ReaderUnavailable):
    """pcscd is not running or cannot be reached."""

    next_step = (
        "Start the PC/SC service (`systemctl start pcscd.socket`, or run `pcscd`) and check "
        "that this user may use it."
    )


class NoReaderError(ReaderUnavailable):
    """No reader, or no reader holding a card, or several where one was needed."""


def _describe(code: int) -> str:
    try:
        return str(scard.SCardGetErrorMessage(code)).strip().rstrip(".")
    except Exception:  # pragma: no cover - message lookup never matters for control flow
        return f"{code & _U32:#010x}"


def _check(code: int, what: str) -> None:
    if code == scard.SCARD_S_SUCCESS:
        return
    c = code & _U32
    if c in _CARD_GONE:
        raise CardLost(f"{what}: {_describe(code)}")
    if c in (
        scard.SCARD_E_NO_SERVICE & _U32,
        scard.SCARD_E_SERVICE_STOPPED & _U32,
        scard.SCARD_E_NO_READERS_AVAILABLE & _U32,
    ):
        raise PcscUnavailable(f"{what}: PC/SC service not available ({_describe(code)})")
    raise TransportError(f"{what}: {_describe(code)}")


class _Context:
    """An SCARD context, released on exit."""

    def __init__(self) -> None:
        code, self.handle = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        _check(code, "cannot reach pcscd")

    def __enter__(self) -> _Context:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        if self.handle is not None:
            scard.SCardReleaseContext(self.handle)
            self.handle = None

    def readers(self) -> list[str]:
        code, readers = scard.SCardListReaders(self.handle, [])
        if code & _U32 == scard.SCARD_E_NO_READERS_AVAILABLE & _U32:
            return []
        _check(code, "cannot list readers")
        return list(readers)


def list_readers() -> list[str]:
    """The names of the PC/SC readers present now."""
    with _Context() as ctx:
        return ctx.readers()


def readers_with_card() -> tuple[list[str], list[str]]:
    """(all readers, readers that hold a card) right now."""
    with _Context() as ctx:
        readers = ctx.readers()
        if not readers:
            return [], []
        states = [(r, scard.SCARD_STATE_UNAWARE) for r in readers]
        code, new = scard.SCardGetStatusChange(ctx.handle, 0, states)
        _check(code, "cannot read reader states")
        present = [r for r, ev, _atr in new if ev & scard.SCARD_STATE_PRESENT]
        return readers, present


def choose_reader(name: str | None) -> str:
    """The reader named ``name``, else the one reader holding a card; lists them otherwise."""
    readers, present = readers_with_card()
    if not readers:
        raise NoReaderError("no PC/SC reader is connected")
    if name is not None:
        matches = [r for r in readers if r == name] or [r for r in readers if name in r]
        if len(matches) != 1:
            listed = "; ".join(readers)
            raise NoReaderError(
                f"reader {name!r} matches {len(matches)} of the readers present ({listed})",
                "Give --reader as one of the names listed.",
            )
        return matches[0]
    if len(present) == 1:
        return present[0]
    if not present:
        raise NoReaderError(f"no token on any reader ({'; '.join(readers)})")
    raise NoReaderError(
        f"tokens on several readers ({'; '.join(present)})", "Choose one with --reader NAME."
    )


class DeviceInUse(TransportError):
    """An exclusive connection was refused: another program has the card open now (so
    nothing is sent that could break its session: refused, not failed)."""

    kind = ProblemKind.REFUSED


class PcscConnection:
    """A shared connection to the card on one reader (``exclusive``: no other program
    may connect while it is open, and it is refused while another one is)."""

    def __init__(self, reader: str, *, exclusive: bool = False) -> None:
        self.reader = reader
        self._ctx = _Context()
        try:
            code, self._card, self._protocol = scard.SCardConnect(
                self._ctx.handle,
                reader,
                scard.SCARD_SHARE_EXCLUSIVE if exclusive else scard.SCARD_SHARE_SHARED,
                scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
            )
            if exclusive and code & _U32 == scard.SCARD_E_SHARING_VIOLATION & _U32:
                raise DeviceInUse(f"another program has the device on {reader} open")
            _check(code, f"cannot connect to the card on {reader}")
        except BaseException:
            self._ctx.release()
            raise
        self._pci = (
            scard.SCARD_PCI_T0 if self._protocol == scard.SCARD_PROTOCOL_T0 else scard.SCARD_PCI_T1
        )

    def __enter__(self) -> PcscConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def atr(self) -> bytes:
        """The card's ATR."""
        code, _name, _state, _proto, atr = scard.SCardStatus(self._card)
        _check(code, "cannot read the card status")
        return bytes(atr)

    def transmit(self, apdu: bytes, *, redact: bool = False) -> bytes:
        """Send one APDU and return the response with its status word."""
        if log.isEnabledFor(TRAFFIC):
            shown = (
                apdu[:5].hex(" ") + f" <{len(apdu) - 5} bytes redacted>"
                if redact
                else apdu.hex(" ")
            )
            log.log(TRAFFIC, "%s >> %s", self.reader, shown)
        code, response = scard.SCardTransmit(self._card, self._pci, list(apdu))
        _check(code, "transmit failed")
        resp = bytes(response)
        if log.isEnabledFor(TRAFFIC):
            log.log(TRAFFIC, "%s << %s", self.reader, resp.hex(" "))
        if len(resp) < 2:
            # vpcd (and some readers) report a card that vanished mid-command this way.
            raise CardLost("the card gave no answer (it left the field)")
        return resp

    def close(self) -> None:
        """Disconnect, leaving the card as it is."""
        card, self._card = getattr(self, "_card", None), None
        if card is not None:
            scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)
        self._ctx.release()


# -- presence monitoring -------------------------------------------------------------------


@dataclass(frozen=True)
class ReaderEvent:
    """Something happened to a reader or the card on it.

    kind: see :class:`~.events.ReaderChange`.
    """

    kind: ReaderChange
    reader: str = ""
    atr: bytes = b""
    detail: str = ""


EventSink = Callable[[ReaderEvent], None]


class PresenceMonitor:
    """Watches every reader on a thread and reports :class:`ReaderEvent` to ``sink``.

    Blocks in ``SCardGetStatusChange`` (no busy polling); reader arrival and departure
    come from the PnP pseudo-reader. When pcscd goes away it reports "service-lost",
    reports every known reader removed, and re-establishes its context with back-off
    (0.25 s doubling to ``max_backoff_s``) until it can report "service-back".
    """

    def __init__(
        self,
        sink: EventSink,
        *,
        max_backoff_s: float = 5.0,
        reader_filter: Callable[[str], bool] | None = None,
    ) -> None:
        self._sink = sink
        self._max_backoff = max_backoff_s
        self._filter = reader_filter or (lambda _name: True)
        self._stop = threading.Event()
        self._ctx_lock = threading.Lock()
        self._ctx: int | None = None
        self._thread: threading.Thread | None = None
        self._readers: dict[str, int] = {}  # name -> last event state
        self._atrs: dict[str, bytes] = {}
        self.alive = False

    def start(self) -> None:
        """Start the monitor thread."""
        self._thread = threading.Thread(target=self._run, name="pcsc-monitor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop and join the thread (cancels a blocking wait). The cancel is repeated
        until the thread ends: one sent just before the thread starts its wait (after
        it last looked at the stop flag) would cancel nothing, and the wait is endless."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        while True:
            with self._ctx_lock:
                if self._ctx is not None:
                    scard.SCardCancel(self._ctx)
            if self._thread is None:
                return
            self._thread.join(0.1)
            if not self._thread.is_alive() or time.monotonic() >= deadline:
                return

    # -- the loop ------------------------------------------------------------------------

    def _emit(self, event: ReaderEvent) -> None:
        try:
            self._sink(event)
        except Exception:
            log.exception("reader event handler failed on %s", event.kind)

    def _run(self) -> None:
        self.alive = True
        backoff = 0.25
        lost_reported = False
        try:
            while not self._stop.is_set():
                try:
                    self._establish()
                    if lost_reported:
                        self._emit(ReaderEvent(ReaderChange.SERVICE_BACK))
                        lost_reported = False
                    backoff = 0.25
                    self._watch()
                except TransportError as exc:
                    if self._stop.is_set():
                        break
                    self._drop_all_readers()
                    if not lost_reported:
                        log.warning("PC/SC: %s; retrying", exc.message)
                        self._emit(ReaderEvent(ReaderChange.SERVICE_LOST, detail=exc.message))
                        lost_reported = True
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, self._max_backoff)
                finally:
                    self._release()
        except Exception:
            log.exception("PC/SC monitor stopped on an unexpected error")
            self._emit(ReaderEvent(ReaderChange.SERVICE_LOST, detail="monitor failed; see the log"))
        finally:
            self.alive = False

    def _establish(self) -> None:
        code, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        _check(code, "cannot reach pcscd")
        with self._ctx_lock:
            self._ctx = ctx

    def _release(self) -> None:
        with self._ctx_lock:
            ctx, self._ctx = self._ctx, None
        if ctx is not None:
            scard.SCardReleaseContext(ctx)

    def _drop_all_readers(self) -> None:
        for name in list(self._readers):
            self._forget(name)

    def _forget(self, name: str) -> None:
        state = self._readers.pop(name, 0)
        self._atrs.pop(name, None)
        if state & scard.SCARD_STATE_PRESENT:
            self._emit(ReaderEvent(ReaderChange.CARD_REMOVED, name))
        self._emit(ReaderEvent(ReaderChange.READER_REMOVED, name))

    def _sync_readers(self) -> None:
        assert self._ctx is not None
        code, names = scard.SCardListReaders(self._ctx, [])
        if code & _U32 == scard.SCARD_E_NO_READERS_AVAILABLE & _U32:
            names = []
        else:
            _check(code, "cannot list readers")
        current = {n for n in names if self._filter(n)}
        for gone in set(self._readers) - current:
            self._forget(gone)
        for new in sorted(current - set(self._readers)):
            self._readers[new] = scard.SCARD_STATE_UNAWARE
            self._emit(ReaderEvent(ReaderChange.READER_ADDED, new))

    def _watch(self) -> None:
        pnp_state = 0
        self._sync_readers()
        while not self._stop.is_set():
            states = [(n, s & ~scard.SCARD_STATE_CHANGED) for n, s in self._readers.items()]
            states.append((PNP_NOTIFICATION, pnp_state))
            assert self._ctx is not None
            code, new = scard.SCardGetStatusChange(self._ctx, scard.INFINITE, states)
            c = code & _U32
            if c == scard.SCARD_E_CANCELLED & _U32:
                return
            if c == scard.SCARD_E_TIMEOUT & _U32:
                continue
            if c in _SERVICE_GONE and c != scard.SCARD_E_UNKNOWN_READER & _U32:
                _check(code, "PC/SC service stopped")
            if c == scard.SCARD_E_UNKNOWN_READER & _U32:
                self._sync_readers()
                continue
            _check(code, "waiting for reader events failed")
            readers_changed = False
            for name, event, atr in new:
                if name == PNP_NOTIFICATION:
                    if event & scard.SCARD_STATE_CHANGED:
                        readers_changed = True
                    pnp_state = event & ~scard.SCARD_STATE_CHANGED
                    continue
                self._reader_state(name, event, bytes(atr))
            if readers_changed:
                self._sync_readers()

    def _reader_state(self, name: str, event: int, atr: bytes) -> None:
        if name not in self._readers:
            return
        before = self._readers[name]
        self._readers[name] = event
        if event & (scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_IGNORE):
            self._forget(name)
            return
        was = bool(before & scard.SCARD_STATE_PRESENT)
        now = bool(event & scard.SCARD_STATE_PRESENT) and not event & scard.SCARD_STATE_MUTE
        # pcsc-lite counts card events in the high word: a changed count while a card is
        # present both times means it was removed and put back between two waits.
        swapped = was and now and (before >> 16) != (event >> 16)
        if was and (not now or swapped):
            self._atrs.pop(name, None)
            self._emit(ReaderEvent(ReaderChange.CARD_REMOVED, name))
        if now and (not was or swapped):
            self._atrs[name] = atr
            self._emit(ReaderEvent(ReaderChange.CARD_INSERTED, name, atr))
