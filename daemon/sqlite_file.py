"""A private SQLite database: the file 0600 in a 0700 folder, opened with its own pragmas."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from tokenstation.daemon import xdg


def open_private(path: Path, pragmas: Iterable[str]) -> sqlite3.Connection:
    """Open (creating if needed) the database at ``path``, private to this user.

    The folder is made 0700 (:func:`xdg.private_dir`, which refuses a folder every user
    may write in); the file is created 0600 before SQLite touches it and tightened to 0600
    if it existed. The connection is in autocommit mode (``isolation_level=None``), may be
    used from any thread (callers serialise it behind their own lock), and has each of
    ``pragmas`` (``"journal_mode=WAL"``, ...) applied in order.
    """
    xdg.private_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    for pragma in pragmas:
        db.execute(f"PRAGMA {pragma}")
    return db


def add_nullable_column(db: sqlite3.Connection, table: str, column: str, kind: str) -> None:
    """Give ``table`` the nullable ``column`` if a database made before it lacks it."""
    if column not in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:
        db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
