"""Reader presence, the event stream, and the one write path for every card operation.

Runs on the asyncio loop. Card I/O (blocking pyscard calls) runs in a thread pool,
one operation per reader at a time. The station owns what is on each reader; the
features beside it (``clocksync.ClockSync``, ``provisioning.Provisioner``) own their
own state, publish their events here and write cards through :meth:`Station.write`.
Subscribers (the features, the D-Bus service, tests) receive typed events
(``events.py``) and never call each other.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar

from tokenstation.daemon import __version__
from tokenstation.daemon.cards import (
    CardOperation,
    CardWrite,
    Presence,
    StationError,
    Written,
    settings_view,
)
from tokenstation.daemon.clocksync.policy import ClockTrust, SyncDecision, burn_follows
from tokenstation.daemon.config import Config
from tokenstation.daemon.events import (
    CardIgnored,
    CardKind,
    DriftDetected,
    ErrorKind,
    Event,
    Fault,
    FaultKind,
    OperationKind,
    Outcome,
    PresenceState,
    ReaderAdded,
    ReaderChange,
    ReaderRemoved,
    ServiceBack,
    SyncVerdict,
    TokenMeasured,
    TokenPresented,
    TokenRemoved,
    TokenUpdated,
    to_wire,
)
from tokenstation.daemon.families import table as families
from tokenstation.daemon.families.base import Family, Reading
from tokenstation.daemon.pcsc import ReaderEvent
from tokenstation.daemon.registry import writes
from tokenstation.daemon.registry.drift import estimate_rate
from tokenstation.daemon.registry.store import Store, TokenRecord
from tokenstation.daemon.storage.database import StoreUnavailable
from tokenstation.daemon.token.errors import (
    AuthenticationRefused,
    CardLost,
    MalformedResponse,
    NotAToken,
    StatusWordError,
    TokenError,
    TransportError,
)
from tokenstation.daemon.token.models import Model, ModelTable
from tokenstation.daemon.token.profiles import ProfileInfo
from tokenstation.daemon.token.session import (
    Connection,
    DriftEstimate,
    HostClock,
    Identification,
    SystemClock,
    TimedInfo,
    WriteResult,
    single_read_estimate,
)

# The write-path words live in cards.py (below the families); the features name them here.
__all__ = [
    "CardOperation",
    "CardWrite",
    "ClockTrustSource",
    "Presence",
    "Station",
    "StationError",
    "Written",
    "settings_view",
    "token_view",
]

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

#: A card that is not a token is announced once per reader and ATR in this window.
IGNORED_CARD_QUIET_S = 60.0

#: What the log adds to a measured token's drift, by verdict ("in time" says it all).
VERDICT_WORDS = {
    SyncVerdict.DRIFT: ", beyond the {:g} s threshold",
    SyncVerdict.READ_ONLY: ", a model tokenstation only reads",
}

#: How long a placement's examination waits for the answer to "does a burn follow at
#: once?" (a few queue reads) before it measures the token as any placement is.
BURN_QUESTION_S = 2.0

Listener = Callable[[Event], None]
ConnectionFactory = Callable[[str], AbstractContextManager[Connection]]


class ClockTrustSource(Protocol):
    """Where the station learns whether the host clock may be trusted."""

    async def check(self, *, fresh: bool = False) -> ClockTrust:
        """The current answer."""
        ...


class Station:
    """Reader presence, the event stream, and the one path by which cards are written.

    Owns: which card is on which reader (:class:`Presence`, the per-reader generation
    and lock), the PC/SC service state, the last host-clock answer, and the subscriber
    list. Features (clock sync, provisioning) read presences, publish their events here
    and write cards through :meth:`write`; they keep their own state.
    """

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
        self.last_trust: ClockTrust | None = None
        self._listeners: list[Listener] = []
        self._generation: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._ignored: dict[tuple[str, bytes], float] = {}
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="token-io")
        self.started_at = time.time()
        #: Asked at a placement, once the token is known (set by station mode's burner):
        #: will a burn follow at once? Then the placement is measured by its one read (a
        #: one-second window) and not precisely: the burn sets the clock and measures it
        #: precisely after. None: every placement is measured precisely.
        self.burns_at_once: Callable[[Presence], Awaitable[bool]] | None = None
        #: Per reader: the TokenUpdated due once its writes pause (see _updated).

    # -- subscribers ---------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        """Receive every event from now on."""
        self._listeners.append(listener)

    def publish(self, event: Event) -> None:
        """Send an event to every subscriber (loop thread only)."""
        log.debug("event %s", event)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception as exc:  # a sentence; the traceback only for debugging
                log.warning("a listener could not take the %s event: %s", type(event).__name__, exc)
                log.debug("listener failure on %s", type(event).__name__, exc_info=True)

    async def check_clock(self, *, fresh: bool = False) -> ClockTrust:
        """Ask whether the host clock may be trusted (and remember the answer)."""
        self.last_trust = await self.trust.check(fresh=fresh)
        return self.last_trust

    # -- reader events -------------------------------------------------------------------

    def on_reader_event(self, ev: ReaderEvent, received: float | None = None) -> None:
        """Handle one PC/SC event (on the loop thread)."""
        try:
            change = ReaderChange(ev.kind)
        except ValueError:
            log.warning("unknown reader event %r", ev.kind)
            return
        handler = {
            ReaderChange.READER_ADDED: self._reader_added,
            ReaderChange.READER_REMOVED: self._reader_removed,
            ReaderChange.CARD_INSERTED: self._card_inserted,
            ReaderChange.CARD_REMOVED: self._card_removed,
            ReaderChange.SERVICE_LOST: self._service_lost,
            ReaderChange.SERVICE_BACK: self._service_back,
        }[change]
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
        self.publish(ReaderAdded(reader=ev.reader))

    def _reader_removed(self, ev: ReaderEvent, at: float) -> None:
        if self.readers.get(ev.reader) is not None:
            self._card_removed(ev, at)
        self.readers.pop(ev.reader, None)
        self._bump(ev.reader)
        log.warning("reader removed: %s", ev.reader)
        self.publish(ReaderRemoved(reader=ev.reader))

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
            self.publish(TokenRemoved(reader=ev.reader, serial=p.serial, model=p.model.name))

    def _service_lost(self, ev: ReaderEvent, _at: float) -> None:
        self.service_ok = False
        self.service_detail = ev.detail
        self.publish(
            Fault(
                kind=FaultKind.SERVICE_LOST,
                message=f"the PC/SC service is gone ({ev.detail}); retrying",
                next_step="Check that pcscd is running (systemctl status pcscd).",
            )
        )

    def _service_back(self, _ev: ReaderEvent, _at: float) -> None:
        self.service_ok = True
        self.service_detail = ""
        self.publish(ServiceBack(message="the PC/SC service is back"))

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

    # -- card I/O: one helper for every operation ----------------------------------------

    async def _on_connection(
        self, reader: str, operation: Callable[[Connection, HostClock], T]
    ) -> T:
        """Run ``operation`` on a fresh connection in the card I/O pool."""

        def run() -> T:
            with self._connect(reader) as conn:
                return operation(conn, self._host_clock())

        return await asyncio.get_running_loop().run_in_executor(self._pool, run)

    # -- examining a card ----------------------------------------------------------------

    async def _examine(self, reader: str, gen: int, event_at: float) -> None:
        loop = asyncio.get_running_loop()

        def announce(family: Family, first: TimedInfo, model: Model) -> bool:
            """On the pool thread: announce the token; False: no precise measurement."""
            if self.burns_at_once is None:
                loop.call_soon_threadsafe(
                    self._presented, reader, gen, family, first, model, event_at
                )
                return True
            asked = asyncio.run_coroutine_threadsafe(
                self._presented_asking(reader, gen, family, first, model, event_at), loop
            )
            try:
                return not asked.result(timeout=BURN_QUESTION_S)
            except FutureTimeout:  # no answer in time: measured as any placement is
                return True

        def identify(conn: Connection, clock: HostClock) -> Reading:
            # A pool thread: what the card is, read once per placement (never in a loop).
            return families.examine(
                reader, conn, clock, cfg=self.cfg, models=self.models, announce=announce
            )

        async with self._lock(reader):
            if self._current(reader, gen) is None:
                return
            try:
                reading = await self._on_connection(reader, identify)
            except (StatusWordError, MalformedResponse) as exc:
                self._not_a_token(reader, gen, exc)
                return
            except TokenError as exc:
                self._examine_failed(reader, gen, exc)
                return
            p = self._current(reader, gen)
            if p is None:
                return
            await self._measured(p, reading, event_at)

    def update_profiles(
        self, p: Presence, changed: list[ProfileInfo], drift: DriftEstimate | None = None
    ) -> None:
        """A write read profiles back (and maybe the clock): the presence keeps them."""
        by_index = {i.index: i for i in changed}
        if p.profiles and by_index:
            p.profiles = [by_index.get(i.index, i) for i in p.profiles]
        if drift is not None and p.model is not None:
            host = self._host_clock().time()
            p.ident = Identification(p.serial, p.model, round(host + drift.drift_s), host, drift)
            self._record_drift(p, p.ident)

    async def _decide_for(self, p: Presence) -> SyncDecision:
        """The sync decision for a presented token, as its family makes it."""
        family = families.family_of(p)
        record = None
        if family.settings_from_registry:
            try:
                record = self.store.token(p.serial)
            except StoreUnavailable:  # the shared registry away: settings unknown meanwhile
                record = None
        return await self._decide(p, record)

    def _presented(  # noqa: PLR0917 (called back through call_soon_threadsafe)
        self,
        reader: str,
        gen: int,
        family: Family,
        first: TimedInfo,
        model: Model,
        event_at: float,
    ) -> None:
        """The family announced a token at its first read (whole-second drift)."""
        p = self._current(reader, gen)
        if p is None:
            return
        p.state = PresenceState.TOKEN
        p.family = family
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
        self.publish(TokenPresented(**p.fields(), event_at=round(event_at, 6)))

    async def _presented_asking(  # noqa: PLR0917 (called back from the pool thread)
        self,
        reader: str,
        gen: int,
        family: Family,
        first: TimedInfo,
        model: Model,
        event_at: float,
    ) -> bool:
        """Announce the token, then ask whether a burn follows at once."""
        self._presented(reader, gen, family, first, model, event_at)
        p = self._current(reader, gen)
        if p is None or self.burns_at_once is None or not model.programmable:
            return False
        try:
            return await self.burns_at_once(p)
        except Exception:  # the question is an optimisation: never a lost placement
            log.exception("deciding whether token %s is burned at once failed", p.serial)
            return False

    async def _measured(self, p: Presence, reading: Reading, event_at: float) -> None:
        """The card was read: who it is, its drift, its decision; TokenPresented (unless
        its family announced it at the first read), TokenMeasured, maybe DriftDetected."""
        family, ident = reading.family, reading.ident
        announced = p.state == PresenceState.TOKEN
        p.state = PresenceState.TOKEN
        p.family = family
        p.serial = ident.serial
        p.model = ident.model
        p.profiles = reading.profiles
        p.ident = ident
        if not reading.precise:  # a burn follows at once and sets the clock
            self._recorded(p, ident)
            p.decision = burn_follows(ident.drift.drift_s, self.cfg)
            log.info(
                "token %s: %s (one read, ±%.1f s); a burn follows at once and measures it after",
                ident.serial,
                family.drift_words(ident.drift.drift_s),
                ident.drift.uncertainty_s,
            )
            self.publish(TokenMeasured(**p.fields()))
            return
        p.precise = True
        record = self._recorded(p, ident, known=family.settings_from_registry)
        p.decision = await self._decide(p, record)
        verdict = VERDICT_WORDS.get(p.decision.verdict, "").format(self.cfg.drift_threshold_s)
        log.info("%s", family.log_words(p, verdict))
        if not announced:
            self.publish(TokenPresented(**p.fields(), event_at=round(event_at, 6)))
        self.publish(TokenMeasured(**p.fields()))
        if p.decision.verdict == SyncVerdict.DRIFT:
            self.publish(DriftDetected(**p.fields()))

    def _recorded(
        self, p: Presence, ident: Identification, *, known: bool = False
    ) -> TokenRecord | None:
        """A measured token seen and its drift recorded in the registry; with ``known``
        its record as it was (its settings). The shared registry unreachable: measured
        and shown all the same, not recorded (settings unknown meanwhile)."""
        try:
            record = self.store.token(ident.serial) if known else None
            writes.measured(self.store, ident, p.reader)
        except StoreUnavailable as exc:
            log.warning("token %s measured, not recorded: %s", ident.serial, exc)
            return None
        return record

    def _record_drift_if_reachable(self, p: Presence, ident: Identification) -> None:
        """After a write: the drift recorded, or (the shared registry away) only shown."""
        try:
            self._record_drift(p, ident)
        except StoreUnavailable as exc:
            log.warning("token %s measured after the write, not recorded: %s", p.serial, exc)

    def _record_drift(self, p: Presence, ident: Identification) -> None:
        writes.drift(self.store, ident, p.reader)

    async def _decide(self, p: Presence, record: TokenRecord | None) -> SyncDecision:
        assert p.model is not None and p.ident is not None
        trust = await self.check_clock()
        settings = record.settings if record else None
        family = families.family_of(p)
        return family.decide(p.model, p.ident.drift.drift_s, trust, self.cfg, settings)

    def _not_a_token(self, reader: str, gen: int, exc: TokenError) -> None:
        p = self._current(reader, gen)
        if p is None:
            return
        p.state = PresenceState.NOT_A_TOKEN
        kind = CardKind.parse(exc.card_kind if isinstance(exc, NotAToken) else "")
        p.detail = (
            exc.message if kind is CardKind.SECURITY_KEY else "not a programmable token; left alone"
        )
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
            self.publish(CardIgnored(reader=reader, atr=p.atr.hex(), message=p.detail, kind=kind))

    def _examine_failed(self, reader: str, gen: int, exc: TokenError) -> None:
        p = self._current(reader, gen)
        if p is None:
            return  # the card was removed meanwhile: nothing to report
        p.state = PresenceState.ERROR
        p.detail = exc.message
        gone = isinstance(exc, CardLost | TransportError)
        log.warning("could not read the card on %s: %s", reader, exc.message)
        self.publish(
            Fault(
                kind=FaultKind.ERROR,
                reader=reader,
                message=f"could not read the card on {reader}: {exc.message}",
                next_step="Place the token again." if gone else exc.next_step,
            )
        )

    # -- finding tokens ------------------------------------------------------------------

    def presences(self) -> list[Presence]:
        """The cards on the readers now."""
        return [p for p in self.readers.values() if p is not None]

    def find(self, serial: str = "", reader: str = "") -> Presence:
        """The presented token to act on: by serial, by reader, or the only one."""
        tokens = [p for p in self.presences() if p.model is not None]
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
                ErrorKind.NOT_PRESENT,
                f"no {what}{where}",
                "Place the token on a reader and try again.",
            )
        raise StationError(
            ErrorKind.NOT_PRESENT,
            f"{len(tokens)} tokens are on the readers ({', '.join(p.serial for p in tokens)})",
            "Say which one with its serial.",
        )

    # -- the write path ------------------------------------------------------------------

    async def write(self, p: Presence, w: CardOperation[Any]) -> Event:
        """Carry out one card write: lock, generation check, fresh session, record, publish.

        Returns the feature's done event; raises :class:`StationError` (after recording
        and publishing the failure, where the feature says there is one).
        """
        lock = self._lock(p.reader)
        if lock.locked() and not w.wait:
            raise StationError(
                ErrorKind.BUSY,
                f"{p.reader} is busy with token {p.serial}",
                "Wait a moment and try again.",
            )
        async with lock:
            if self._current(p.reader, p.generation) is None:
                raise StationError(
                    ErrorKind.NOT_PRESENT, f"token {p.serial} left the reader", "Place it again."
                )
            try:
                if p.key_refused:
                    raise StationError(
                        ErrorKind.REFUSED,
                        f"token {p.serial} refused the key on this placement; it is never "
                        "tried again (a refused key may lock the token)",
                        "Check the key in the configuration, then place the token again.",
                    )
                await w.prepare(p)
                p.state = w.busy
                try:
                    result = await self._on_connection(
                        p.reader, lambda conn, clock: w.perform(conn, clock, self.models)
                    )
                finally:
                    p.state = PresenceState.TOKEN
            except StationError as exc:
                self._finish(p, w.failed(p, exc), exc.message)
                raise
            except TokenError as exc:
                p.key_refused = p.key_refused or isinstance(exc, AuthenticationRefused)
                self._finish(p, w.failed(p, exc), exc.message)
                self._updated(p, w.kind, Outcome.FAILED)
                raise StationError(ErrorKind.FAILED, exc.message, exc.next_step) from None
            after = writes.after_write(result) if isinstance(result, WriteResult) else None
            if after is not None and p.model:
                p.ident = after
                p.precise = p.precise or after.drift.method == "rollover"  # a fast burn's
                self._record_drift_if_reachable(p, after)
            done = w.succeeded(p, result)
            if p.model is not None and p.ident is not None:
                p.decision = await self._decide_for(p)
            self._finish(p, done, "")
            self._updated(p, w.kind, Outcome.OK)
            return (done[-1] if isinstance(done, list) else done).event

    def _updated(self, p: Presence, after: OperationKind, outcome: Outcome) -> None:
        """After a write that reached the card: the token's presence as it is now (the
        drift read back, the new decision), at once, unless it left the reader meanwhile.
        One per write: a Molto2's batch of burns is one write (one TokenUpdated with
        every profile as it now is), each of its jobs has its own done or failed event."""
        if self._current(p.reader, p.generation) is not None and p.model is not None:
            self.publish(TokenUpdated(**p.fields(), after=after, outcome=outcome))

    def _finish(self, p: Presence, written: Written | list[Written] | None, why: str) -> None:
        for one in written if isinstance(written, list) else [] if written is None else [written]:
            op = one.operation
            try:
                self.store.record_operation(op)
            except StoreUnavailable as exc:  # the feature keeps its own record of it (a burn)
                log.warning(
                    "%s of token %s not recorded in the registry: %s", op.kind, p.serial, exc
                )
            level = logging.INFO if op.outcome == Outcome.OK else logging.WARNING
            log.log(level, "%s of token %s: %s %s", op.kind, p.serial, op.outcome, why or op.detail)
            self.publish(one.event)

    # -- views ---------------------------------------------------------------------------

    def present(self) -> list[dict[str, object]]:
        """The cards on the readers now (plain form)."""
        return [to_wire(p.view()) for p in self.presences()]

    def status(self) -> dict[str, object]:
        """The station at a glance (features add their own parts)."""
        trust = self.last_trust
        return {
            "version": __version__,
            "started_at": round(self.started_at, 3),
            "pcsc": "running" if self.service_ok else f"lost: {self.service_detail}",
            "readers": sorted(self.readers),
            "tokens_present": sum(1 for p in self.presences() if p.model is not None),
            "host_clock": trust.as_dict() if trust else {"trusted": False, "reason": "not asked"},
            "drift_threshold_s": self.cfg.drift_threshold_s,
            "auto_sync": self.cfg.auto_sync,
            "registry": self.store.location,
            "station": self.store.station,
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
    if r.last_station:
        out["last_station"] = r.last_station
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
