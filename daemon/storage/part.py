"""One part of the station's records (the registry, the queue) on either store."""

from __future__ import annotations

from pathlib import Path

from tokenstation.daemon.storage import schema
from tokenstation.daemon.storage.database import Database, StoreUnavailable
from tokenstation.daemon.storage.sqlite_db import SqliteDatabase


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
        self._part = part
        #: False while a shared database away at opening has not had its schema checked.
        self.verified = False
        try:
            self.verify()
        except StoreUnavailable:
            if not db.started_away:  # checked when it answers (SharedQueue's keeper)
                raise

    def verify(self) -> None:
        """Check (shared) or migrate (own file) the schema, once; StoreUnavailable while
        the shared database is away, SchemaMismatch when it is not this version's."""
        if not self.verified:
            schema.prepare(self._db, (self._part,))
            self.verified = True

    @property
    def location(self) -> str:
        """Where the part is (a path, or the shared database)."""
        return str(self._db.location)

    @property
    def started_away(self) -> bool:
        """True when the shared database could not be reached as this was opened."""
        return bool(self._db.started_away)

    @property
    def shared(self) -> bool:
        """True when other stations use the same records."""
        return bool(self._db.shared)
