"""The one interface both storage backends offer: statements, transactions, notifications.

The registry and the queue write their SQL once, with ``?`` placeholders and the
dialect words named here (``greatest``, ``now``, ``skip_locked``); a backend turns them
into its own. A backend serialises its connection behind :attr:`Database.lock`, so the
callers' methods may be called from any thread.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar, Protocol

from tokenstation.daemon.token.problem import Problem, ProblemKind


class Rows(Protocol):
    """What a statement returns (a DB-API cursor of either library)."""

    @property
    def rowcount(self) -> int:
        """Rows changed by an INSERT/UPDATE/DELETE."""
        ...

    def fetchone(self) -> Any:
        """The next row, or None."""
        ...

    def fetchall(self) -> list[Any]:
        """Every remaining row."""
        ...


class StoreUnavailable(Problem):
    """The shared database cannot be reached now (the message says why; no secret in it).

    ``brief`` says it without the server's location or its error text (a Unix socket's
    folder, a client library's words): what a D-Bus error reply, which any local user may
    provoke, carries."""

    kind = ProblemKind.UNAVAILABLE

    def __init__(self, message: str, brief: str = "") -> None:
        super().__init__(message)
        self.brief = brief or "the shared database cannot be reached now"


class NameTaken(Problem):
    """Another live station on the shared database has this station's name."""

    kind = ProblemKind.REFUSED


class SchemaMismatch(Problem):
    """The database's schema is not the one this tokenstation knows (older or newer)."""

    kind = ProblemKind.FAILED


#: Called with each notification's payload, on the backend's listener thread.
NotifyHandler = Callable[[str], None]


class Database(ABC):
    """A connection to one storage backend."""

    #: "sqlite" or "postgresql".
    dialect: str
    #: True when other stations use the same database (leases, notifications matter).
    shared: bool
    #: The scalar maximum of two values (SQLite's two-argument MAX, PostgreSQL's GREATEST).
    greatest: str
    #: The database's clock in seconds since the epoch, as an SQL expression.
    now: str
    #: What a SELECT adds to lock its rows and skip those another transaction holds.
    skip_locked: str
    #: The column type of ids, times and bytes in migrations.
    types: ClassVar[dict[str, str]]

    def __init__(self) -> None:
        self.lock = threading.RLock()
        #: A shared database that could not be reached when opened (a daemon started
        #: while it was down): its schema and key are checked once it answers.
        self.started_away = False

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the data is (a path, or the server and database; never a password)."""

    @abstractmethod
    def execute(self, sql: str, args: Sequence[object] = ()) -> Rows:
        """Run one statement (autocommitted unless inside :meth:`transaction`)."""

    @abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """Hold the lock and run the block as one transaction (rolled back on an exception)."""

    def notify(self, payload: str) -> None:  # noqa: B027 (a station alone: nobody to tell)
        """Tell the other stations the queue changed (within a transaction: at its commit)."""

    def listen(  # noqa: B027 (a station alone: nobody else changes it)
        self, handler: NotifyHandler, on_state: Callable[[bool], None]
    ) -> None:
        """Call ``handler`` with every notification; ``on_state(reachable)`` on changes."""

    def hold_name(self, name: str) -> None:  # noqa: B027 (this station's own files)
        """Hold ``name`` for this station while it runs (NameTaken when another live
        station holds it); called again, it checks the hold and takes it anew if the
        connection holding it was lost (StoreUnavailable while unreachable). While the
        name is not held (lost, or not yet taken again after a loss), the backend refuses
        transactions (a claim is one) with StoreUnavailable; single statements go on."""

    def scrub(self) -> None:  # noqa: B027 (a backend without a log file of old pages)
        """After a secret was erased (lock held): make sure no old copy stays in a log file."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection (and the listener)."""
