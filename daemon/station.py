"""The orchestrator: reader events in, token checks and policy decisions, events out.

Runs on the asyncio loop. Card I/O (blocking pyscard calls) runs in a thread pool,
one operation per reader at a time. Subscribers (the D-Bus service, tests) receive
:class:`StationEvent` values from a closed set of kinds and never call each other.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NoReturn, Protocol, TypeVar

from . import __version__
from .config import Config
from .drift import estimate_rate
from .pcsc import ReaderEvent
from .policy import ClockTrust, KnownSettings, SyncDecision, decide, known_settings, unsafe_reason
from .store import DriftPoint, Operation, Store, TokenRecord
from .token.errors import (
    CardLost,
    MalformedResponse,
    NotAToken,
    StatusWordError,
    TokenError,
    TransportError,
)
from .token.models import Model, ModelTable
from .token.session import (
    ClockKind,
    Connection,
    DriftEstimate,
    HostClock,
    Identification,
    SystemClock,
    TimedInfo,
    TokenSession,
    WriteResult,
    describe_drift,
    single_read_estimate,
)
from .token.settings import TokenSettings

log = logging.getLogger(__name__)
T = TypeVar("T")

#: A card that is not a token is announced once per reader and ATR in this window.
IGNORED_CARD_QUIET_S = 60.0


class EventKind(StrEnum):
    """Everything the station reports."""

    READER_ADDED = "reader-added"
    READER_REMOVED = "reader-removed"
    TOKEN_PRESENTED = "token-presented"  # serial and model, a first whole-second drift
    TOKEN_MEASURED = "token-measured"  # precise drift and the sync decision
    DRIFT_DETECTED = "drift-detected"  # measured beyond the threshold
    TOKEN_REMOVED = "token-removed"
    CARD_IGNORED = "card-ignored"  # a card that is not a programmable token
    SYNC_DONE = "sync-done"
    SYNC_FAILED = "sync-failed"
    ERROR = "error"
    SERVICE_LOST = "service-lost"
    SERVICE_BACK = "service-back"
    QUEUE_STATE = "queue-state"
    FILE_TAKEN = "file-taken"  # a dropped file: what it was, what was queued or why not
    BURN_OFFERED = "burn-offered"  # attended mode: a job waits for this token's yes
    BURN_DONE = "burn-done"
    BURN_FAILED = "burn-failed"


@dataclass(frozen=True)
class StationEvent:
    """One thing that happened, as plain values (never a secret)."""

    kind: EventKind
    payload: dict[str, object]


Listener = Callable[[StationEvent], None]
ConnectionFactory = Callable[[str], AbstractContextManager[Connection]]


class ClockTrustSource(Protocol):
    """Where the station learns whether the host clock may be trusted."""

    async def check(self, *, fresh: bool = False) -> ClockTrust:
        """The current answer."""
        ...


class StationError(Exception):
    """A request the station refused or could not carry out.

    kind: "not-present", "refused", "needs-confirmation", "busy" or "failed".
    """

    def __init__(self, kind: str, message: str, next_step: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.next_step = next_step


@dataclass
class Presence:
    """What is on one reader right now."""

    reader: str
    generation: int
    atr: bytes
    placed_at: float
    state: str = "identifying"  # identifying | token | not-a-token | syncing | error
    serial: str = ""
    model: Model | None = None
    ident: Identification | None = None
    precise: bool = False
    decision: SyncDecision | None = None
    detail: str = ""
    history: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """JSON/D-Bus friendly form."""
        out: dict[str, object] = {
            "reader": self.reader,
            "state": self.state,
            "placed_at": round(self.placed_at, 3),
        }
        if self.detail:
            out["detail"] = self.detail
        if self.model is not None:
            out.update(
                serial=self.serial,
                model=self.model.name,
                programmable=self.model.programmable,
                restricted_sync=self.model.restricted_sync,
            )
        if self.ident is not None:
            d = self.ident.drift
            out.update(
                token_time=self.ident.token_time,
                host_time=round(self.ident.host_time, 3),
                drift_s=round(d.drift_s, 3),
                drift_uncertainty_s=round(d.uncertainty_s, 3),
                drift_method=d.method,
                drift_words=describe_drift(d.drift_s),
                precise=self.precise,
            )
        if self.decision is not None:
            out.update(self.decision.as_dict())
        return out


class Station:
    """Reader events -> identification -> drift -> decision -> events and actions."""

    def __init__(
        self,
        cfg: Config,
        store: Store,
        trust: ClockTrustSource,
        connect: ConnectionFactory,
        *,
        host_clock: Callable[[], HostClock] = SystemClock,
        workers: int = 4,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.trust = trust
        self._connect = connect
        self._host_clock = host_clock
        self.models = ModelTable(cfg.vendors)
        self.readers: dict[str, Presence | None] = {}
        self.service_ok = True
        self.service_detail = ""
        self.paused = False
        self.last_trust: ClockTrust | None = None
        self._listeners: list[Listener] = []
        self._generation: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._ignored: dict[tuple[str, bytes], float] = {}
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="token-io")
        self.started_at = time.time()
        # Set by the provisioner when a burn queue is attached.
        self.queue_size: Callable[[], int] = lambda: 0
        self.extra_status: Callable[[], dict[str, object]] = dict

    # -- subscribers ---------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        """Receive every event from now on."""
        self._listeners.append(listener)

    def publish(self, kind: EventKind, payload: dict[str, object]) -> None:
        """Send an event to every subscriber (loop thread only)."""
        self._publish(kind, payload)

    def _publish(self, kind: EventKind, payload: dict[str, object]) -> None:
        event = StationEvent(kind, {"time": round(time.time(), 3), **payload})
        log.debug("event %s %s", kind.value, payload)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed on %s", kind.value)

    # -- reader events -------------------------------------------------------------------

    def on_reader_event(self, ev: ReaderEvent, received: float | None = None) -> None:
        """Handle one PC/SC event (on the loop thread)."""
        handler = {
            "reader-added": self._reader_added,
            "reader-removed": self._reader_removed,
            "card-inserted": self._card_inserted,
            "card-removed": self._card_removed,
            "service-lost": self._service_lost,
            "service-back": self._service_back,
        }.get(ev.kind)
        if handler is None:
            log.warning("unknown reader event %r", ev.kind)
            return
        handler(ev, received if received is not None else time.time())

    def _bump(self, reader: str) -> int:
        self._generation[reader] = self._generation.get(reader, 0) + 1
        return self._generation[reader]

    def _current(self, reader: str, generation: int) -> Presence | None:
        p = self.readers.get(reader)
        return p if p is not None and p.generation == generation else None

    def _reader_added(self, ev: ReaderEvent, _at: float) -> None:
        self.readers.setdefault(ev.reader, None)
        log.info("reader added: %s", ev.reader)
        self._publish(EventKind.READER_ADDED, {"reader": ev.reader})

    def _reader_removed(self, ev: ReaderEvent, at: float) -> None:
        if self.readers.get(ev.reader) is not None:
            self._card_removed(ev, at)
        self.readers.pop(ev.reader, None)
        self._bump(ev.reader)
        log.warning("reader removed: %s", ev.reader)
        self._publish(EventKind.READER_REMOVED, {"reader": ev.reader})

    def _card_inserted(self, ev: ReaderEvent, at: float) -> None:
        gen = self._bump(ev.reader)
        self.readers[ev.reader] = Presence(ev.reader, gen, ev.atr, at)
        self._spawn(self._examine(ev.reader, gen, at))

    def _card_removed(self, ev: ReaderEvent, _at: float) -> None:
        p = self.readers.get(ev.reader)
        self._bump(ev.reader)
        if ev.reader in self.readers:
            self.readers[ev.reader] = None
        if p is not None and p.model is not None:
            log.info("token %s removed from %s", p.serial, ev.reader)
            self._publish(
                EventKind.TOKEN_REMOVED,
                {"reader": ev.reader, "serial": p.serial, "model": p.model.name},
            )

    def _service_lost(self, ev: ReaderEvent, _at: float) -> None:
        self.service_ok = False
        self.service_detail = ev.detail
        self._publish(
            EventKind.SERVICE_LOST,
            {
                "message": f"the PC/SC service is gone ({ev.detail}); retrying",
                "next_step": "Check that pcscd is running (systemctl status pcscd).",
            },
        )

    def _service_back(self, _ev: ReaderEvent, _at: float) -> None:
        self.service_ok = True
        self.service_detail = ""
        self._publish(EventKind.SERVICE_BACK, {"message": "the PC/SC service is back"})

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("station task failed", exc_info=task.exception())

    def _lock(self, reader: str) -> asyncio.Lock:
        return self._locks.setdefault(reader, asyncio.Lock())

    # -- examining a card ----------------------------------------------------------------

    async def _examine(self, reader: str, gen: int, event_at: float) -> None:
        loop = asyncio.get_running_loop()

        def presented(first: TimedInfo, model: Model) -> None:
            loop.call_soon_threadsafe(self._presented, reader, gen, first, model, event_at)

        async with self._lock(reader):
            if self._current(reader, gen) is None:
                return
            try:
                ident = await loop.run_in_executor(
                    self._pool, self._identify_blocking, reader, presented
                )
            except (StatusWordError, MalformedResponse) as exc:
                self._not_a_token(reader, gen, exc)
                return
            except TokenError as exc:
                self._examine_failed(reader, gen, exc)
                return
            p = self._current(reader, gen)
            if p is None:
                return
            await self._measured(p, ident)

    def _identify_blocking(
        self, reader: str, presented: Callable[[TimedInfo, Model], None]
    ) -> Identification:
        with self._connect(reader) as conn:
            session = TokenSession(conn, self.models, self._host_clock())
            return session.identify(on_first=presented)

    def _presented(
        self, reader: str, gen: int, first: TimedInfo, model: Model, event_at: float
    ) -> None:
        p = self._current(reader, gen)
        if p is None:
            return
        p.state = "token"
        p.serial = first.info.serial
        p.model = model
        p.ident = Identification(
            first.info.serial,
            model,
            first.info.token_time,
            first.midpoint,
            single_read_estimate(first),
        )
        log.info("token %s (%s) on %s", p.serial, model.name, reader)
        self._publish(
            EventKind.TOKEN_PRESENTED,
            {**p.as_dict(), "event_at": round(event_at, 6)},
        )

    async def _measured(self, p: Presence, ident: Identification) -> None:
        p.ident = ident
        p.precise = True
        record = self.store.token(ident.serial)
        self.store.seen(ident.serial, ident.model.name, ident.host_time)
        self.store.record_drift(
            ident.serial,
            DriftPoint(
                ident.host_time,
                ident.drift.drift_s,
                ident.drift.uncertainty_s,
                ident.drift.method,
                p.reader,
            ),
        )
        p.decision = await self._decide(ident.model, ident.drift.drift_s, record)
        log.info(
            "token %s: %s (±%.3f s), %s",
            ident.serial,
            describe_drift(ident.drift.drift_s),
            ident.drift.uncertainty_s,
            p.decision.verdict,
        )
        self._publish(EventKind.TOKEN_MEASURED, p.as_dict())
        if p.decision.verdict == "drift":
            self._publish(EventKind.DRIFT_DETECTED, p.as_dict())
        if p.decision.auto_sync:
            try:
                await self._sync_locked(p, p.decision.settings, origin="auto")
            except StationError as exc:
                log.warning("auto-sync of %s did not happen: %s", ident.serial, exc.message)

    async def _decide(
        self, model: Model, drift_s: float, record: TokenRecord | None
    ) -> SyncDecision:
        trust = await self.trust.check()
        self.last_trust = trust
        known = known_settings(record.settings if record else None, self.cfg)
        return decide(model, drift_s, known, trust, self.cfg)

    def _not_a_token(self, reader: str, gen: int, exc: TokenError) -> None:
        p = self._current(reader, gen)
        if p is None:
            return
        p.state = "not-a-token"
        kind = exc.card_kind if isinstance(exc, NotAToken) else "other"
        p.detail = exc.message if kind == "security-key" else "not a programmable token; left alone"
        key = (reader, p.atr)
        now = time.monotonic()
        quiet = now - self._ignored.get(key, -IGNORED_CARD_QUIET_S) < IGNORED_CARD_QUIET_S
        self._ignored[key] = now
        log.log(
            logging.DEBUG if quiet else logging.INFO,
            "card on %s is not a programmable token (%s); left alone",
            reader,
            exc.message,
        )
        if not quiet:
            self._publish(
                EventKind.CARD_IGNORED,
                {"reader": reader, "atr": p.atr.hex(), "message": p.detail, "kind": kind},
            )

    def _examine_failed(self, reader: str, gen: int, exc: TokenError) -> None:
        p = self._current(reader, gen)
        if p is None:
            return  # the card was removed meanwhile: nothing to report
        p.state = "error"
        p.detail = exc.message
        gone = isinstance(exc, CardLost | TransportError)
        log.warning("could not read the card on %s: %s", reader, exc.message)
        self._publish(
            EventKind.ERROR,
            {
                "reader": reader,
                "message": f"could not read the card on {reader}: {exc.message}",
                "next_step": "Place the token again." if gone else exc.next_step,
            },
        )

    # -- sync ----------------------------------------------------------------------------

    def find(self, serial: str = "", reader: str = "") -> Presence:
        """The presented token to act on: by serial, by reader, or the only one."""
        tokens = [p for p in self.readers.values() if p is not None and p.model is not None]
        if serial:
            tokens = [p for p in tokens if p.serial == serial]
        if reader:
            tokens = [p for p in tokens if p.reader == reader]
        if len(tokens) == 1:
            return tokens[0]
        if not tokens:
            what = f"token {serial}" if serial else "token"
            where = f" on {reader}" if reader else " on any reader"
            raise StationError(
                "not-present",
                f"no {what}{where}",
                "Place the token on a reader and try again.",
            )
        raise StationError(
            "not-present",
            f"{len(tokens)} tokens are on the readers ({', '.join(p.serial for p in tokens)})",
            "Say which one with its serial.",
        )

    async def sync(
        self,
        serial: str = "",
        *,
        reader: str = "",
        confirm_untrusted_clock: bool = False,
        settings: TokenSettings | None = None,
        origin: str = "manual",
    ) -> dict[str, object]:
        """Set a presented token's clock, where that is safe. Raises :class:`StationError`."""
        p = self.find(serial, reader)
        lock = self._lock(p.reader)
        if lock.locked():
            raise StationError(
                "busy",
                f"{p.reader} is busy with token {p.serial}",
                "Wait a moment and try again.",
            )
        async with lock:
            if self._current(p.reader, p.generation) is None:
                raise StationError(
                    "not-present", f"token {p.serial} left the reader", "Place it again."
                )
            record = self.store.token(p.serial)
            known = self._settings_for(p.serial, record, settings)
            return await self._sync_locked(
                p, known, origin=origin, confirm_untrusted_clock=confirm_untrusted_clock
            )

    def _settings_for(
        self, serial: str, record: TokenRecord | None, given: TokenSettings | None
    ) -> KnownSettings | None:
        registry = record.settings if record else None
        if given is None:
            return known_settings(registry, self.cfg)
        if registry is not None and registry != given:
            raise StationError(
                "refused",
                f"this station wrote {_words(registry)} to token {serial}, not {_words(given)}",
                "Leave the settings out to use the registry's, or re-burn the token.",
            )
        return KnownSettings(given, "caller")

    async def _sync_locked(
        self,
        p: Presence,
        known: KnownSettings | None,
        *,
        origin: str,
        confirm_untrusted_clock: bool = False,
    ) -> dict[str, object]:
        assert p.model is not None and p.ident is not None
        base = {"reader": p.reader, "serial": p.serial, "model": p.model.name, "origin": origin}
        drift_before = p.ident.drift.drift_s
        unsafe = unsafe_reason(p.model, known)
        if unsafe:
            next_step = "Nothing was written to the token."
            if known is None and p.model.clock_write_keeps_seed:
                next_step += (
                    " If you know how it was burned, give the settings: `tokenstation sync "
                    "--algorithm sha1|sha256 --period 30|60 --display-timeout 15|30|60|120`."
                )
            self._sync_failed(p, base, "refused", unsafe, next_step=next_step)
        assert known is not None
        trust = await self.trust.check(fresh=True)
        self.last_trust = trust
        if not trust.trusted and not confirm_untrusted_clock:
            raise StationError(
                "needs-confirmation",
                f"the host clock is not trusted: {trust.reason}",
                "Fix the host clock, or confirm that it is right and sync again.",
            )
        p.state = "syncing"
        loop = asyncio.get_running_loop()
        try:
            result: WriteResult = await loop.run_in_executor(
                self._pool,
                self._set_clock_blocking,
                p.reader,
                p.serial,
                known.settings,
                ClockKind.parse(self.store.clock_kind(p.serial)),
                p.ident.drift,
            )
        except TokenError as exc:
            p.state = "token"
            self._sync_failed(
                p,
                base,
                "failed",
                exc.message,
                next_step=exc.next_step,
                drift_before=drift_before,
            )
        p.state = "token"
        at = result.host_time_after
        after = result.residual
        if result.clock_kind is not ClockKind.UNKNOWN:
            self.store.record_clock_kind(p.serial, result.clock_kind.value, at)
        self.store.record_write(p.serial, known.settings, at, provisioned=False)
        self.store.record_operation(
            Operation(
                p.serial,
                at,
                "sync",
                "ok",
                f"{origin}; settings from {known.source}",
                drift_before,
                after.drift_s if after else None,
            )
        )
        if after is not None:
            self.store.record_drift(
                p.serial, DriftPoint(at, after.drift_s, after.uncertainty_s, after.method, p.reader)
            )
            p.ident = Identification(p.serial, p.model, result.token_time_after, at, after)
        record = self.store.token(p.serial)
        p.decision = await self._decide(p.model, after.drift_s if after else 0.0, record)
        payload: dict[str, object] = {
            **base,
            "drift_before_s": round(drift_before, 3),
            "drift_before_words": describe_drift(drift_before),
            "settings": known.settings.as_dict(),
            "settings_source": known.source,
            "untrusted_clock_confirmed": not trust.trusted,
            "clock_kind": result.clock_kind.value,
            "clock_writes": result.clock_writes,
        }
        if after is not None:
            payload["drift_after_s"] = round(after.drift_s, 3)
            payload["drift_after_uncertainty_s"] = round(after.uncertainty_s, 3)
            payload["drift_after_words"] = describe_drift(after.drift_s)
            payload["drift_after_bound_s"] = result.drift_bound_s
        log.info(
            "synced token %s (%s): was %s, now %s",
            p.serial,
            origin,
            describe_drift(drift_before),
            describe_drift(after.drift_s) if after else "?",
        )
        self._publish(EventKind.SYNC_DONE, payload)
        return payload

    def _set_clock_blocking(
        self,
        reader: str,
        serial: str,
        settings: TokenSettings,
        clock_kind: ClockKind = ClockKind.UNKNOWN,
        before: DriftEstimate | None = None,
    ) -> WriteResult:
        with self._connect(reader) as conn:
            session = TokenSession(conn, self.models, self._host_clock())
            return session.set_clock(
                settings,
                expect_serial=serial,
                measure_after=True,
                clock_kind=clock_kind,
                before=before,
            )

    def _sync_failed(
        self,
        p: Presence,
        base: Mapping[str, object],
        outcome: str,
        message: str,
        *,
        next_step: str,
        drift_before: float | None = None,
    ) -> NoReturn:
        self.store.record_operation(
            Operation(p.serial, time.time(), "sync", outcome, message, drift_before)
        )
        log.warning("sync of token %s %s: %s", p.serial, outcome, message)
        self._publish(
            EventKind.SYNC_FAILED,
            {**base, "outcome": outcome, "message": message, "next_step": next_step},
        )
        raise StationError(outcome, message, next_step)

    # -- queue ---------------------------------------------------------------------------

    def set_paused(self, paused: bool) -> None:
        """Pause or resume the burn queue."""
        if paused != self.paused:
            self.paused = paused
            self._publish(EventKind.QUEUE_STATE, {"paused": paused, "length": self.queue_length})

    @property
    def queue_length(self) -> int:
        """Jobs waiting for a token."""
        return self.queue_size()

    async def card_operation(
        self, p: Presence, operation: Callable[[TokenSession], T], *, wait: bool = True
    ) -> T:
        """Run ``operation`` on a fresh session with the card on ``p.reader``.

        One operation per reader at a time; ``wait=False`` refuses (busy) instead of
        queuing behind another. Refused when the card left meanwhile.
        """
        lock = self._lock(p.reader)
        if lock.locked() and not wait:
            raise StationError("busy", f"{p.reader} is busy", "Wait a moment and try again.")
        async with lock:
            if self._current(p.reader, p.generation) is None:
                raise StationError("not-present", f"token {p.serial} left the reader", "")
            loop = asyncio.get_running_loop()

            def run() -> T:
                with self._connect(p.reader) as conn:
                    return operation(TokenSession(conn, self.models, self._host_clock()))

            return await loop.run_in_executor(self._pool, run)

    # -- views ---------------------------------------------------------------------------

    def present(self) -> list[dict[str, object]]:
        """The cards on the readers now."""
        return [p.as_dict() for p in self.readers.values() if p is not None]

    def status(self) -> dict[str, object]:
        """The station at a glance."""
        trust = self.last_trust
        return {
            "version": __version__,
            "started_at": round(self.started_at, 3),
            "pcsc": "running" if self.service_ok else f"lost: {self.service_detail}",
            "readers": sorted(self.readers),
            "tokens_present": sum(
                1 for p in self.readers.values() if p is not None and p.model is not None
            ),
            "host_clock": trust.as_dict() if trust else {"trusted": False, "reason": "not asked"},
            "drift_threshold_s": self.cfg.drift_threshold_s,
            "auto_sync": self.cfg.auto_sync,
            "paused": self.paused,
            "queue_length": self.queue_length,
            "registry": str(self.store.path),
            **self.extra_status(),
        }

    def registry(self, serial: str = "", *, history: bool = False) -> list[dict[str, object]]:
        """Known tokens with their drift rate and forecast (one when ``serial`` is given)."""
        records = [self.store.token(serial)] if serial else self.store.tokens()
        return [
            token_view(self.store, r, self.cfg.drift_threshold_s, history=history)
            for r in records
            if r is not None
        ]

    async def close(self) -> None:
        """Let running card operations finish, then stop the pool."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5.0)
        self._pool.shutdown(wait=False, cancel_futures=True)


def token_view(
    store: Store, r: TokenRecord, threshold_s: float, *, history: bool = False
) -> dict[str, object]:
    """A registry entry with its last drift, rate and forecast (no secrets exist here)."""
    points = store.drift_history(r.serial)
    ops = store.operations(r.serial)
    rate = estimate_rate(points, store.clock_writes(r.serial), threshold_s, time.time())
    out: dict[str, object] = {
        "serial": r.serial,
        "model": r.model,
        "first_seen": round(r.first_seen, 3),
        "last_seen": round(r.last_seen, 3),
        "settings_known": r.settings is not None,
        "provisioned": r.provisioned,
        "measurements": len(points),
        "threshold_s": threshold_s,
    }
    if r.settings is not None:
        out["settings"] = r.settings.as_dict()
    if r.last_clock_write is not None:
        out["last_clock_write"] = round(r.last_clock_write, 3)
    if points:
        out["last_drift_s"] = round(points[-1].drift_s, 3)
        out["last_drift_at"] = round(points[-1].at, 3)
    if rate is not None:
        out["rate"] = rate.as_dict()
    if ops:
        out["last_operation"] = ops[-1].as_dict()
    if history:
        out["history"] = [
            {"at": p.at, "drift_s": p.drift_s, "uncertainty_s": p.uncertainty_s, "method": p.method}
            for p in points
        ]
        out["operations"] = [op.as_dict() for op in ops]
    return out


def _words(s: TokenSettings) -> str:
    return f"{s.hmac.name}, {s.period} s step, {s.display_timeout} s display"
