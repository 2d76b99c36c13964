"""The registry: tokens seen, the settings written to them, drift history, operations.

No secret is ever stored here: a burn is recorded by its secret's fingerprint. By
default a SQLite file in the XDG state directory (0700, the file 0600; WAL mode keeps
readers such as ``tokenstation tokens`` from blocking the daemon); with ``[store] url``
a PostgreSQL database the stations share, so settings written at one station are known
at every other. Each row names the station that made it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tokenstation.daemon.storage import schema
from tokenstation.daemon.storage.database import Database
from tokenstation.daemon.storage.part import StoredPart
from tokenstation.daemon.token.settings import HmacAlgorithm, TokenSettings

SCHEMA_VERSION = schema.REGISTRY.version
SQLITE_PRAGMAS = ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=5000")


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
    last_station: str = ""


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
    station: str = ""  # filled in by the store: the station that recorded it
    profile: int | None = None  # the Molto2 profile a burn went into

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form."""
        out: dict[str, object] = {
            "at": self.at,
            "kind": self.kind,
            "outcome": self.outcome,
            "detail": self.detail,
        }
        for key in ("drift_before_s", "drift_after_s", "secret_fingerprint", "station", "profile"):
            value = getattr(self, key)
            if value is not None and value != "":
                out[key] = value
        return out


class Store(StoredPart):
    """The registry database. Thread-safe (one connection behind a lock).

    ``target`` is this station's SQLite file or an open shared :class:`Database`;
    ``station`` names this station on every row it writes.
    """

    def __init__(self, target: Path | Database, *, station: str = "") -> None:
        super().__init__(target, SQLITE_PRAGMAS, schema.REGISTRY, station)
        g = self._db.greatest
        self._seen_sql = (
            "INSERT INTO tokens (serial, model, first_seen, last_seen, last_station) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (serial) DO UPDATE SET model = excluded.model, "
            f"last_seen = {g}(tokens.last_seen, excluded.last_seen), "
            "last_station = excluded.last_station"
        )
        self._write_sql = (
            "UPDATE tokens SET hmac = ?, period = ?, display_timeout = ?, settings_at = ?, "
            f"last_clock_write = ?, provisioned = {g}(provisioned, ?) WHERE serial = ?"
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
            self._db.execute(self._seen_sql, (serial, model, at, at, self.station))

    def record_drift(self, serial: str, point: DriftPoint) -> None:
        """Append a drift measurement."""
        with self._lock:
            self._db.execute(
                "INSERT INTO drift (serial, at, drift_s, uncertainty_s, method, reader, station) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    serial,
                    point.at,
                    point.drift_s,
                    point.uncertainty_s,
                    point.method,
                    point.reader,
                    self.station,
                ),
            )

    def record_write(
        self, serial: str, settings: TokenSettings, at: float, *, provisioned: bool
    ) -> None:
        """This station wrote ``settings`` and the clock at ``at`` (and a seed if provisioned)."""
        with self._lock:
            self._db.execute(
                self._write_sql,
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
                "drift_after_s, secret_fingerprint, station, profile) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    op.serial,
                    op.at,
                    op.kind,
                    op.outcome,
                    op.detail,
                    op.drift_before_s,
                    op.drift_after_s,
                    op.secret_fingerprint,
                    op.station or self.station,
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
                "secret_fingerprint, station, profile FROM operations WHERE serial = ? "
                "ORDER BY at, id",
                (serial,),
            ).fetchall()
        return [Operation(*r) for r in rows]

    def clock_writes(self, serial: str) -> list[float]:
        """Times at which a station set the clock of ``serial`` successfully."""
        return [op.at for op in self.operations(serial) if op.outcome == "ok"]


_TOKEN_SELECT = (
    "SELECT serial, model, first_seen, last_seen, hmac, period, display_timeout, settings_at, "
    "last_clock_write, provisioned, last_station FROM tokens"
)


def _token(row: tuple[object, ...]) -> TokenRecord:
    serial, model, first, last, hmac, period, display, settings_at, clock_write, prov, where = row
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
        last_station=str(where or ""),
    )
