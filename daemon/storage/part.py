"""One part of the station's records (the registry, the queue) on either store."""

from __future__ import annotations

from pathlib import Path

from . import schema
from .database import Database
from .sqlite_db import SqliteDatabase


class StoredPart:
    """A part opened on this station's SQLite file (``target`` a path, with ``pragmas``)
    or on an open shared :class:`Database`, its schema migrated or checked; ``station``
    names this station on every row it writes."""

    def __init__(
        self,
        target: Path | Database,
        pragmas: tuple[str, ...],
        part: schema.Part,
        station: str,
    ) -> None:
        db = SqliteDatabase(target, pragmas) if isinstance(target, Path) else target
        self.path = target if isinstance(target, Path) else None
        self.station = station
        self._db = db
        self._lock = db.lock
        schema.prepare(db, (part,))

    @property
    def location(self) -> str:
        """Where the part is (a path, or the shared database)."""
        return str(self._db.location)

    @property
    def shared(self) -> bool:
        """True when other stations use the same records."""
        return bool(self._db.shared)
