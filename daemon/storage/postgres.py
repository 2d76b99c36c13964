"""The shared backend: a PostgreSQL database several stations use (psycopg 3).

The only module that imports psycopg (Debian's ``python3-psycopg`` 3.1 or PyPI's
``psycopg[binary]``); only APIs present in 3.1 are used. The connection string is
libpq's: a ``postgresql://`` URL, and the usual ``PG*`` environment variables and
service files fill in what it leaves out. One connection serves the statements (behind
the lock); a second one, on a thread of its own, LISTENs for the other stations' queue
changes and says when the server goes away and comes back.

A server that stops answering (hung, or the network between partitioned) never holds a
caller for long: connections have TCP keepalives and a TCP user timeout, the server
cancels a statement after :data:`STATEMENT_TIMEOUT_S` (a lock wait after
:data:`LOCK_TIMEOUT_S`), and the client cuts a connection whose server has not answered
within :data:`ANSWER_TIMEOUT_S` (:class:`_Watchdog`: this also bounds a Unix-socket
connection, which keepalives do not cover). After a loss, statements fail at once
(StoreUnavailable) until a thread of the database's own has connected again.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

from tokenstation.daemon.storage.database import (
    Database,
    NameTaken,
    NotifyHandler,
    Rows,
    StoreUnavailable,
)

log = logging.getLogger(__name__)

CHANNEL = "tokenstation_queue"
CONNECT_TIMEOUT_S = 5
#: The server cancels a statement running longer (and a wait for a lock, LOCK_TIMEOUT_S).
STATEMENT_TIMEOUT_S = 5
LOCK_TIMEOUT_S = 3
#: The client cuts a connection whose server has not answered a statement for this long.
ANSWER_TIMEOUT_S = 8.0
#: How often the listener checks that its connection still answers, and for how long.
HEALTH_CHECK_S = 2.0
HEALTH_ANSWER_S = 5.0
RECONNECT_S = 1.0
#: libpq's TCP settings: a silent peer is noticed in seconds (ignored on Unix sockets).
TCP_SETTINGS: dict[str, object] = {
    "connect_timeout": CONNECT_TIMEOUT_S,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": int(ANSWER_TIMEOUT_S * 1000),
}


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise StoreUnavailable(
            "PostgreSQL support needs psycopg 3: install python3-psycopg "
            "(or pip install 'tokenstation[store]')"
        ) from None
    return psycopg


def connect(conninfo: str, where: str, **extra: object) -> Any:
    """A new autocommit connection with the bounds above (the URL's own values win, its
    ``options`` (or PGOPTIONS) come after ours); StoreUnavailable when it cannot be
    made. A malformed connection string is told without its text: it may hold a
    password."""
    psycopg = _psycopg()
    given: dict[str, Any] | None = None
    with contextlib.suppress(psycopg.Error):  # its text may quote the password
        given = psycopg.conninfo.conninfo_to_dict(conninfo)
    if given is None:
        raise StoreUnavailable(
            "the shared database's connection string cannot be read: check [store] url "
            "(or --store): a postgresql://user@host:port/dbname URL, with any special "
            "character in it percent-encoded (%40 for @)"
        )
    if os.environ.get("PGCONNECT_TIMEOUT"):  # libpq's environment, as the URL's own values
        given.setdefault("connect_timeout", os.environ["PGCONNECT_TIMEOUT"])
    params = {k: v for k, v in TCP_SETTINGS.items() if k not in given}
    bounds = (
        f"-c statement_timeout={STATEMENT_TIMEOUT_S * 1000} -c lock_timeout={LOCK_TIMEOUT_S * 1000}"
    )
    theirs = given.get("options") or os.environ.get("PGOPTIONS", "")
    params["options"] = f"{bounds} {theirs}".strip()
    failure = ""
    try:
        return psycopg.connect(conninfo, autocommit=True, **params, **extra)
    except psycopg.OperationalError as exc:
        failure = f"cannot be reached: {_first_line(exc)}"
    except psycopg.Error as exc:  # not the server's answer: its text may quote the URL
        failure = (
            f"cannot be used with this connection string ({type(exc).__name__}): "
            "check [store] url (or --store)"
        )
    raise StoreUnavailable(f"the shared database ({where}) {failure}")


def describe(conninfo: str) -> str:
    """``user@host:port/dbname`` from a connection string, without any password."""
    try:
        parts: dict[str, Any] = _psycopg().conninfo.conninfo_to_dict(conninfo)
    except Exception:
        return "postgresql (unparsable connection string)"
    host = parts.get("host") or parts.get("hostaddr") or "(libpq default)"
    where = f"{host}:{parts['port']}" if parts.get("port") else str(host)
    user = f"{parts['user']}@" if parts.get("user") else ""
    service = f" service={parts['service']}" if parts.get("service") else ""
    return f"postgresql {user}{where}/{parts.get('dbname', '')}{service}"


class PostgresDatabase(Database):
    """A connection to the shared database (re-made on the next statement after a loss)."""

    dialect = "postgresql"
    shared = True
    greatest = "GREATEST"
    now = "EXTRACT(EPOCH FROM clock_timestamp())::float8"
    skip_locked = " FOR UPDATE SKIP LOCKED"
    types: ClassVar[dict[str, str]] = {
        "id": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        "real": "DOUBLE PRECISION",
        "bytes": "BYTEA",
    }

    def __init__(self, conninfo: str, *, start_away: bool = False) -> None:
        """Connect now (StoreUnavailable when the server cannot be reached), or with
        ``start_away``, take the server as gone and connect in the background."""
        super().__init__()
        self.conninfo = conninfo
        self._where = describe(conninfo)
        self._sql: dict[str, str] = {}
        self._conn: Any = None
        self._listener: _Listener | None = None
        self._name: _NameHold | None = None
        #: Why the server is taken as gone (statements fail at once), until it answers again.
        self._down: str | None = None
        self._reviver: threading.Thread | None = None
        self._revive_lock = threading.Lock()
        self._closed = threading.Event()
        #: Why this station may not write although the server answers: its name is not held
        #: (another live station took it, or it is to be taken again after a loss). Claims,
        #: like every write of more than one statement, are transactions: those are refused.
        self._unnamed: str | None = None
        with self.lock:
            try:
                self._conn = connect(conninfo, self._where)
            except StoreUnavailable as exc:
                if not start_away:
                    raise
                self.started_away = True
                self._gone(str(exc))

    @property
    def location(self) -> str:
        return self._where

    def _connection(self) -> Any:
        down = self._down
        if down is not None:
            raise StoreUnavailable(down)
        if self._conn is None or self._conn.closed:
            self._conn = None
            try:
                self._conn = connect(self.conninfo, self._where)
            except StoreUnavailable as exc:
                self._lost(str(exc))
                raise
        return self._conn

    def _unreachable(self, exc: Exception) -> str:
        return f"the shared database ({self._where}) cannot be reached: {_first_line(exc)}"

    def _lost(self, why: str) -> None:
        """Statements fail at once from now on; a thread connects again (lock held)."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
        self._gone(why)

    def _gone(self, why: str) -> None:
        """Take the server as gone until :meth:`_revive` reaches it (any thread, no lock:
        the listener says so while a statement may still wait on the server)."""
        with self._revive_lock:
            if self._down is None:
                self._down = why
            if self._name is not None and self._unnamed is None:
                self._unnamed = (
                    f"the shared database ({self._where}) was lost: no claims until this "
                    f"station holds its name {self._name.name!r} again"
                )
            if (
                self._reviver is None or not self._reviver.is_alive()
            ) and not self._closed.is_set():
                self._reviver = threading.Thread(
                    target=self._revive, name="store-revive", daemon=True
                )
                self._reviver.start()

    def _revive(self) -> None:
        while not self._closed.is_set():
            try:
                conn = connect(self.conninfo, self._where)
                with WATCHDOG.bound(conn, HEALTH_ANSWER_S):
                    conn.execute("SELECT 1")
            except Exception as exc:
                log.debug("the shared database is still unreachable: %s", _first_line(exc))
                self._closed.wait(RECONNECT_S)
                continue
            with self.lock:
                old, self._conn = self._conn, conn
                self._down = None
                if old is not None:
                    with contextlib.suppress(Exception):
                        old.close()
                if self._closed.is_set():
                    self._conn = None
                    conn.close()
            return

    def _down_why(self) -> str | None:
        """Why the server is taken as gone now (another thread may have said so)."""
        return self._down

    def _translate(self, sql: str) -> str:
        out = self._sql.get(sql)
        if out is None:
            out = self._sql[sql] = sql.replace("%", "%%").replace("?", "%s")
        return out

    @contextlib.contextmanager
    def _guard(self, answer_s: float) -> Iterator[tuple[Any, _Bound]]:
        """The connection, bounded: a server that does not answer within ``answer_s``, or a
        lost connection, becomes StoreUnavailable (and statements fail at once until it is
        back); a statement the server cancelled (too slow, a lock wait) one too."""
        if self._down is not None:  # without waiting for the lock a stuck statement holds
            raise StoreUnavailable(self._down)
        psycopg = _psycopg()
        with self.lock:
            conn = self._connection()
            watch = WATCHDOG.bound(conn, answer_s)
            try:
                with watch:
                    yield conn, watch
            except psycopg.OperationalError as exc:
                if watch.fired:
                    why = (
                        f"the shared database ({self._where}) did not answer within {answer_s:g} s"
                    )
                elif (down := self._down_why()) is not None:  # found gone inside first
                    why = down
                elif conn.closed or conn.broken:
                    why = self._unreachable(exc)
                else:  # it answers: it cancelled the statement (too slow, a lock wait)
                    why = f"the shared database ({self._where}) failed a statement: "
                    why += _first_line(exc)
                if watch.fired or conn.closed or conn.broken:
                    self._lost(why)
                raise StoreUnavailable(why) from None

    def execute(self, sql: str, args: Sequence[object] = ()) -> Rows:
        with self._guard(ANSWER_TIMEOUT_S) as (conn, _):
            cur: Rows = conn.execute(self._translate(sql), tuple(args))
            return cur

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        unnamed = self._unnamed
        if unnamed is not None and self._down is None:  # (a server gone is told as such)
            raise StoreUnavailable(unnamed)
        with self._guard(ANSWER_TIMEOUT_S) as (conn, watch), conn.transaction():  # BEGIN
            watch.off()  # the block's statements are bounded one by one
            try:
                yield
            finally:
                watch.again(ANSWER_TIMEOUT_S)  # COMMIT or ROLLBACK

    def notify(self, payload: str) -> None:
        self.execute("SELECT pg_notify(?, ?)", (CHANNEL, payload))

    def listen(self, handler: NotifyHandler, on_state: Callable[[bool], None]) -> None:
        def state(reachable: bool) -> None:
            if not reachable:  # statements fail at once, not after their own wait
                self._gone(f"the shared database ({self._where}) cannot be reached")
            on_state(reachable)

        if self._listener is None:
            self._listener = _Listener(self.conninfo, handler, state)
            self._listener.start()

    def hold_name(self, name: str) -> None:
        if self._name is None:
            self._name = _NameHold(self.conninfo, name, self._where)
        try:
            self._name.check()
        except (NameTaken, StoreUnavailable) as exc:
            self._unnamed = f"{exc} (no claims while this station's name is not held)"
            raise
        self._unnamed = None

    def close(self) -> None:
        self._closed.set()
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        if self._name is not None:
            self._name.close()
            self._name = None
        with self.lock:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()
                self._conn = None


class _NameHold:
    """A station's name, held as a session-level advisory lock on a connection of its own
    for the station's life: the server lets it go when that connection ends, however the
    station ends (a crashed station's name is free again at once)."""

    def __init__(self, conninfo: str, name: str, where: str) -> None:
        self.conninfo = conninfo
        self.name = name
        self.where = where
        digest = hashlib.sha256(b"tokenstation station\0" + name.encode()).digest()
        self.key = int.from_bytes(digest[:8], "big", signed=True)
        self._conn: Any = None
        self._lock = threading.Lock()

    def check(self) -> None:
        """Still held, or taken now (NameTaken, StoreUnavailable)."""
        psycopg = _psycopg()
        with self._lock:
            if self._conn is not None:
                try:
                    with WATCHDOG.bound(self._conn, HEALTH_ANSWER_S):
                        self._conn.execute("SELECT 1")
                    return
                except psycopg.Error:
                    self.close()  # the server went away: the hold went with it
            conn = connect(
                self.conninfo,
                self.where,
                application_name=f"tokenstation {socket.gethostname()} pid {os.getpid()}"[:63],
            )
            try:
                with WATCHDOG.bound(conn, ANSWER_TIMEOUT_S):
                    (held,) = conn.execute(
                        "SELECT pg_try_advisory_lock(%s)", (self.key,)
                    ).fetchone()
                    holder = "" if held else self._holder(conn)
            except psycopg.OperationalError as exc:
                conn.close()
                raise StoreUnavailable(
                    f"the shared database ({self.where}) cannot be reached: {_first_line(exc)}"
                ) from None
            if not held:
                conn.close()
                raise NameTaken(
                    f"another station named {self.name!r} is running on {self.where}"
                    f"{holder}: give each station its own [station] name"
                )
            self._conn = conn

    def _holder(self, conn: Any) -> str:
        row = conn.execute(
            "SELECT a.application_name, a.client_addr::text, "
            "to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') "
            "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.classid::bigint = %s AND l.objid::bigint = %s",
            ((self.key >> 32) & 0xFFFFFFFF, self.key & 0xFFFFFFFF),
        ).fetchone()
        if row is None:
            return ""
        app, addr, since = row
        where = f" from {addr}" if addr else ""
        return f" ({app or 'a client'}{where}, since {since} UTC)"

    def close(self) -> None:
        """Let the name go."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


class _Listener(threading.Thread):
    """LISTEN on its own connection; reconnects; reports reachability changes."""

    def __init__(
        self, conninfo: str, handler: NotifyHandler, on_state: Callable[[bool], None]
    ) -> None:
        super().__init__(name="store-listen", daemon=True)
        self.conninfo = conninfo
        self.handler = handler
        self.on_state = on_state
        self._halt = threading.Event()
        self._conn: Any = None

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def run(self) -> None:
        psycopg = _psycopg()
        reachable: bool | None = None
        while not self._halt.is_set():
            try:
                conn = connect(self.conninfo, describe(self.conninfo))
            except StoreUnavailable as exc:
                if reachable is not False:
                    reachable = False
                    log.warning("%s", exc)
                    self._state(False)
                self._halt.wait(RECONNECT_S)
                continue
            try:
                with WATCHDOG.bound(conn, HEALTH_ANSWER_S):
                    conn.execute(f"LISTEN {CHANNEL}")
                if reachable is not True:
                    reachable = True
                    self._state(True)
                self._serve(conn)
            except psycopg.OperationalError as exc:
                if not self._halt.is_set():
                    reachable = False
                    log.warning("the shared database went away: %s", _first_line(exc))
                    self._state(False)
            finally:
                with contextlib.suppress(Exception):
                    conn.close()

    def _serve(self, conn: Any) -> None:
        """Hand on notifications as they arrive; a health check when idle."""
        pg = conn.pgconn
        fd = conn.fileno()
        while not self._halt.is_set():
            readable, _, _ = select.select([fd], [], [], HEALTH_CHECK_S)
            if not readable:
                with WATCHDOG.bound(conn, HEALTH_ANSWER_S) as watch:
                    try:
                        conn.execute("SELECT 1")
                    except _psycopg().OperationalError:
                        if watch.fired:
                            raise _psycopg().OperationalError(
                                f"no answer within {HEALTH_ANSWER_S:g} s"
                            ) from None
                        raise
            else:
                pg.consume_input()
                if pg.status != 0:  # CONNECTION_OK
                    raise _psycopg().OperationalError("connection lost")
            while (n := pg.notifies()) is not None:
                try:
                    self.handler(n.extra.decode("utf-8", "replace"))
                except Exception:
                    log.exception("handling a queue notification failed")

    def _state(self, reachable: bool) -> None:
        try:
            self.on_state(reachable)
        except Exception:
            log.exception("reporting the shared database's state failed")


class _Bound:
    """One armed deadline (see :meth:`_Watchdog.bound`)."""

    def __init__(self, watchdog: _Watchdog, fd: int, deadline: float) -> None:
        self.watchdog = watchdog
        self.fd = fd
        self.deadline = deadline
        self.fired = False

    def __enter__(self) -> _Bound:
        self.watchdog.arm(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.watchdog.disarm(self)

    def off(self) -> None:
        """Not bounded for now (see :meth:`again`)."""
        self.watchdog.disarm(self)

    def again(self, seconds: float) -> None:
        """Bounded again, ``seconds`` from now."""
        self.deadline = time.monotonic() + seconds
        self.watchdog.arm(self)


class _Watchdog:
    """Cuts (shuts down the socket of) a connection whose server has not answered by a
    deadline: the statement waiting on it then fails at once as a lost connection. One
    thread for every connection, started when first needed, asleep when nothing is armed.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._armed: set[_Bound] = set()
        self._thread: threading.Thread | None = None
        self._wake_at = float("inf")  # when the thread looks next (no wake-up before)

    def bound(self, conn: Any, seconds: float) -> _Bound:
        """A context: ``conn`` is cut if the block takes longer than ``seconds``."""
        return _Bound(self, conn.fileno(), time.monotonic() + seconds)

    def arm(self, bound: _Bound) -> None:
        with self._cond:
            self._armed.add(bound)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="store-watch", daemon=True)
                self._thread.start()
            if bound.deadline < self._wake_at:  # else it looks in time anyway
                self._cond.notify()

    def disarm(self, bound: _Bound) -> None:
        with self._cond:  # not while it is being cut: the fd is still this connection's
            self._armed.discard(bound)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for bound in [b for b in self._armed if b.deadline <= now]:
                    self._armed.discard(bound)
                    bound.fired = True
                    _cut(bound.fd)
                self._wake_at = min((b.deadline for b in self._armed), default=float("inf"))
                self._cond.wait(None if self._wake_at == float("inf") else self._wake_at - now)


def _cut(fd: int) -> None:
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


WATCHDOG = _Watchdog()


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
