"""The embedded backend: one private SQLite file per part, on this station only."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import ClassVar

from tokenstation.daemon.sqlite_file import open_private
from tokenstation.daemon.storage.database import Database, Rows

log = logging.getLogger(__name__)


class SqliteDatabase(Database):
    """A private SQLite file (0600 in a 0700 folder), autocommit, WAL."""

    dialect = "sqlite"
    shared = False
    greatest = "MAX"
    now = "((julianday('now') - 2440587.5) * 86400.0)"
    skip_locked = ""
    types: ClassVar[dict[str, str]] = {"id": "INTEGER PRIMARY KEY", "real": "REAL", "bytes": "BLOB"}

    def __init__(self, path: Path, pragmas: Iterable[str]) -> None:
        super().__init__()
        self.path = path
        self.db: sqlite3.Connection = open_private(path, pragmas)

    @property
    def location(self) -> str:
        return str(self.path)

    def execute(self, sql: str, args: Sequence[object] = ()) -> Rows:
        return self.db.execute(sql, args)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def scrub(self) -> None:
        busy, _log, _done = self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            log.warning(
                "the write-ahead log of %s could not be truncated now (a reader holds it); "
                "it will be at the next erasure or at stop",
                self.path.name,
            )

    def close(self) -> None:
        with self.lock:
            self.db.close()
