"""SQLite registry: tokens seen, the settings this station wrote, drift history, operations.

No secret is ever stored here: a burn is recorded by its secret's fingerprint. The file
lives in the XDG state directory (0700) and is itself 0600; WAL mode keeps readers
(``tokenstation tokens``) from blocking the daemon.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from tokenstation.daemon.sqlite_file import add_nullable_column, open_private
from tokenstation.daemon.token.settings import HmacAlgorithm, TokenSettings

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    serial TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    hmac TEXT,
    period INTEGER,
    display_timeout INTEGER,
    settings_at REAL,
    last_clock_write REAL,
    provisioned INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS drift (
    id INTEGER PRIMARY KEY,
    serial TEXT NOT NULL,
    at REAL NOT NULL,
    drift_s REAL NOT NULL,
    uncertainty_s REAL NOT NULL,
    method TEXT NOT NULL,
    reader TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS drift_serial ON drift (serial, at);
CREATE TABLE IF NOT EXISTS operations (
    id INTEGER PRIMARY KEY,
    serial TEXT NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    drift_before_s REAL,
    drift_after_s REAL,
    secret_fingerprint TEXT,
    profile INTEGER
);
CREATE INDEX IF NOT EXISTS operations_serial ON operations (serial, at);
CREATE TABLE IF NOT EXISTS clock_kinds (
    serial TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    at REAL NOT NULL
);
"""


@dataclass(frozen=True)
class TokenRecord:
    """One token as this station knows it."""

    serial: str
    model: str
    first_seen: float
    last_seen: float
    settings: TokenSettings | None
    settings_at: float | None
    last_clock_write: float | None
    provisioned: bool


@dataclass(frozen=True)
class DriftPoint:
    """One drift measurement (token - host, seconds)."""

    at: float
    drift_s: float
    uncertainty_s: float
    method: str
    reader: str = ""


@dataclass(frozen=True)
class Operation:
    """A sync or burn and how it ended; no secret, a fingerprint at most."""

    serial: str
    at: float
    kind: str  # "sync" | "burn"
    outcome: str  # "ok" | "failed" | "refused"
    detail: str = ""
    drift_before_s: float | None = None
    drift_after_s: float | None = None
    secret_fingerprint: str | None = None
    profile: int | None = None  # the Molto2 profile a burn went into

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form."""
        out: dict[str, object] = {
            "at": self.at,
            "kind": self.kind,
            "outcome": self.outcome,
            "detail": self.detail,
        }
        for key in ("drift_before_s", "drift_after_s", "secret_fingerprint", "profile"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


class Store:
    """The registry database. Thread-safe (one connection behind a lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = open_private(
            path, ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=5000")
        )
        with self._lock:
            self._db.executescript(_SCHEMA)
            add_nullable_column(self._db, "operations", "profile", "INTEGER")
            self._db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )

    @classmethod
    def read_only(cls, path: Path) -> Store:
        """Open an existing registry without creating anything (for the CLI)."""
        if not path.exists():
            raise FileNotFoundError(path)
        return cls(path)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    # -- writing -------------------------------------------------------------------------

    def seen(self, serial: str, model: str, at: float) -> None:
        """Note that ``serial`` was on a reader at ``at``."""
        with self._lock:
            self._db.execute(
                "INSERT INTO tokens (serial, model, first_seen, last_seen) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (serial) DO UPDATE SET model = excluded.model, "
                "last_seen = MAX(last_seen, excluded.last_seen)",
                (serial, model, at, at),
            )

    def record_drift(self, serial: str, point: DriftPoint) -> None:
        """Append a drift measurement."""
        with self._lock:
            self._db.execute(
                "INSERT INTO drift (serial, at, drift_s, uncertainty_s, method, reader) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (serial, point.at, point.drift_s, point.uncertainty_s, point.method, point.reader),
            )

    def record_write(
        self, serial: str, settings: TokenSettings, at: float, *, provisioned: bool
    ) -> None:
        """This station wrote ``settings`` and the clock at ``at`` (and a seed if provisioned)."""
        with self._lock:
            self._db.execute(
                "UPDATE tokens SET hmac = ?, period = ?, display_timeout = ?, settings_at = ?, "
                "last_clock_write = ?, provisioned = MAX(provisioned, ?) WHERE serial = ?",
                (
                    settings.hmac.label,
                    settings.period,
                    settings.display_timeout,
                    at,
                    at,
                    int(provisioned),
                    serial,
                ),
            )

    def mark_uncertain_burn(self, serial: str, at: float) -> None:
        """A burn onto ``serial`` was interrupted: it counts as provisioned, settings unknown.

        Station mode never burns over a provisioned token, and a sync of a model whose
        clock write rewrites the settings asks for them instead of guessing.
        """
        with self._lock:
            self._db.execute(
                "INSERT INTO tokens (serial, model, first_seen, last_seen, provisioned) "
                "VALUES (?, '', ?, ?, 1) ON CONFLICT (serial) DO UPDATE SET provisioned = 1, "
                "hmac = NULL, period = NULL, display_timeout = NULL, settings_at = NULL",
                (serial, at, at),
            )

    def record_operation(self, op: Operation) -> None:
        """Append a sync/burn outcome."""
        with self._lock:
            self._db.execute(
                "INSERT INTO operations (serial, at, kind, outcome, detail, drift_before_s, "
                "drift_after_s, secret_fingerprint, profile) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    op.serial,
                    op.at,
                    op.kind,
                    op.outcome,
                    op.detail,
                    op.drift_before_s,
                    op.drift_after_s,
                    op.secret_fingerprint,
                    op.profile,
                ),
            )

    def record_clock_kind(self, serial: str, kind: str, at: float) -> None:
        """What a sync learnt of ``serial``'s clock ("phase-keeping" or "phase-resetting")."""
        with self._lock:
            self._db.execute(
                "INSERT INTO clock_kinds (serial, kind, at) VALUES (?, ?, ?) "
                "ON CONFLICT (serial) DO UPDATE SET kind = excluded.kind, at = excluded.at",
                (serial, kind, at),
            )

    # -- reading -------------------------------------------------------------------------

    def clock_kind(self, serial: str) -> str | None:
        """The clock kind last learnt for ``serial``, if any sync learnt one."""
        with self._lock:
            row = self._db.execute(
                "SELECT kind FROM clock_kinds WHERE serial = ?", (serial,)
            ).fetchone()
        return str(row[0]) if row else None

    def token(self, serial: str) -> TokenRecord | None:
        """The record for ``serial``, if it was ever seen."""
        with self._lock:
            row = self._db.execute(_TOKEN_SELECT + " WHERE serial = ?", (serial,)).fetchone()
        return _token(row) if row else None

    def tokens(self) -> list[TokenRecord]:
        """Every token seen, most recently seen first."""
        with self._lock:
            rows = self._db.execute(_TOKEN_SELECT + " ORDER BY last_seen DESC").fetchall()
        return [_token(r) for r in rows]

    def drift_history(self, serial: str) -> list[DriftPoint]:
        """Drift measurements of ``serial``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT at, drift_s, uncertainty_s, method, reader FROM drift "
                "WHERE serial = ? ORDER BY at",
                (serial,),
            ).fetchall()
        return [DriftPoint(*r) for r in rows]

    def operations(self, serial: str) -> list[Operation]:
        """Syncs and burns of ``serial``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT serial, at, kind, outcome, detail, drift_before_s, drift_after_s, "
                "secret_fingerprint, profile FROM operations WHERE serial = ? ORDER BY at",
                (serial,),
            ).fetchall()
        return [Operation(*r) for r in rows]

    def clock_writes(self, serial: str) -> list[float]:
        """Times at which this station set the clock of ``serial`` successfully."""
        return [op.at for op in self.operations(serial) if op.outcome == "ok"]


_TOKEN_SELECT = (
    "SELECT serial, model, first_seen, last_seen, hmac, period, display_timeout, settings_at, "
    "last_clock_write, provisioned FROM tokens"
)


def _token(row: tuple[object, ...]) -> TokenRecord:
    serial, model, first, last, hmac, period, display, settings_at, clock_write, prov = row
    settings = (
        TokenSettings(HmacAlgorithm.parse(str(hmac)), int(str(period)), int(str(display)))
        if hmac is not None
        else None
    )
    return TokenRecord(
        serial=str(serial),
        model=str(model),
        first_seen=float(str(first)),
        last_seen=float(str(last)),
        settings=settings,
        settings_at=float(str(settings_at)) if settings_at is not None else None,
        last_clock_write=float(str(clock_write)) if clock_write is not None else None,
        provisioned=bool(prov),
    )
