"""Numbered migrations of each part's tables, written once for both backends.

A part (the registry, the queue, the provisioning log) keeps its version in the
``meta`` table under its own key. ``{id}``, ``{real}`` and ``{bytes}`` in a migration
become the backend's column types. A new column is one more migration (an
``ALTER TABLE ... ADD COLUMN``) at the end of its part's list, plus its name where the
part reads and writes it.

SQLite files are brought up to date when they are opened (they belong to this station
alone). A shared PostgreSQL database is migrated only by ``tokenstation store migrate``:
a daemon finding any other version refuses to start and names that command.
"""

from __future__ import annotations

from dataclasses import dataclass

from tokenstation.daemon.storage.database import Database, SchemaMismatch

META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
MIGRATE_COMMAND = "tokenstation store migrate"


@dataclass(frozen=True)
class Part:
    """One part's tables: the meta key of its version and its migrations, oldest first."""

    name: str
    version_key: str
    migrations: tuple[str, ...]

    @property
    def version(self) -> int:
        """The version this code reads and writes."""
        return len(self.migrations)


REGISTRY = Part(
    "registry",
    "schema_version",  # the key registry files have always had
    (
        """
        CREATE TABLE IF NOT EXISTS tokens (
            serial TEXT PRIMARY KEY,
            model TEXT NOT NULL,
            first_seen {real} NOT NULL,
            last_seen {real} NOT NULL,
            hmac TEXT,
            period INTEGER,
            display_timeout INTEGER,
            settings_at {real},
            last_clock_write {real},
            provisioned INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE IF NOT EXISTS drift (
            id {id},
            serial TEXT NOT NULL,
            at {real} NOT NULL,
            drift_s {real} NOT NULL,
            uncertainty_s {real} NOT NULL,
            method TEXT NOT NULL,
            reader TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX IF NOT EXISTS drift_serial ON drift (serial, at);
        CREATE TABLE IF NOT EXISTS operations (
            id {id},
            serial TEXT NOT NULL,
            at {real} NOT NULL,
            kind TEXT NOT NULL,
            outcome TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '',
            drift_before_s {real},
            drift_after_s {real},
            secret_fingerprint TEXT
        );
        CREATE INDEX IF NOT EXISTS operations_serial ON operations (serial, at);
        CREATE TABLE IF NOT EXISTS clock_kinds (
            serial TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            at {real} NOT NULL
        )
        """,
        # 2: which station saw a token last, measured it, wrote to it.
        """
        ALTER TABLE tokens ADD COLUMN last_station TEXT NOT NULL DEFAULT '';
        ALTER TABLE drift ADD COLUMN station TEXT NOT NULL DEFAULT '';
        ALTER TABLE operations ADD COLUMN station TEXT NOT NULL DEFAULT ''
        """,
        # 3: the Molto2 profile a burn went into.
        """
        ALTER TABLE operations ADD COLUMN profile INTEGER
        """,
    ),
)

QUEUE = Part(
    "queue",
    "queue_schema_version",
    (
        """
        CREATE TABLE IF NOT EXISTS jobs (
            id {id},
            state TEXT NOT NULL,
            secret {bytes},
            secret_hash TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            issuer TEXT NOT NULL DEFAULT '',
            account TEXT NOT NULL DEFAULT '',
            algorithm TEXT NOT NULL,
            period INTEGER NOT NULL,
            serial TEXT NOT NULL DEFAULT '',
            source TEXT NOT NULL DEFAULT '',
            created {real} NOT NULL,
            updated {real} NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            reason TEXT NOT NULL DEFAULT '',
            burned_serial TEXT,
            burned_at {real}
        );
        CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, id);
        CREATE INDEX IF NOT EXISTS jobs_hash ON jobs (secret_hash);
        CREATE TABLE IF NOT EXISTS files (
            sha256 TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            verdict TEXT NOT NULL,
            at {real} NOT NULL
        )
        """,
        # 2: the station that queued a job and the one holding its claim, until when.
        """
        ALTER TABLE jobs ADD COLUMN station TEXT NOT NULL DEFAULT '';
        ALTER TABLE jobs ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';
        ALTER TABLE jobs ADD COLUMN lease_until {real};
        CREATE TABLE IF NOT EXISTS provisioning_log (
            id {id},
            time_utc TEXT NOT NULL,
            station TEXT NOT NULL,
            serial TEXT NOT NULL,
            model TEXT NOT NULL,
            issuer TEXT NOT NULL,
            account TEXT NOT NULL,
            secret_fingerprint TEXT NOT NULL,
            algorithm TEXT NOT NULL,
            period TEXT NOT NULL,
            job_id TEXT NOT NULL,
            source TEXT NOT NULL
        )
        """,
        # 3: the Molto2 profile a job goes (went) into; the log's too ('' if none).
        """
        ALTER TABLE jobs ADD COLUMN profile INTEGER;
        ALTER TABLE provisioning_log ADD COLUMN profile TEXT NOT NULL DEFAULT ''
        """,
        # 4: seeds made here (issue 23): the batch, the user it is assigned to, the model
        # burned, and the hand-over: '' (not a generated seed) | pending | exported |
        # pushed | erased, the sealed seed kept until then, when and why.
        """
        ALTER TABLE jobs ADD COLUMN batch TEXT NOT NULL DEFAULT '';
        ALTER TABLE jobs ADD COLUMN upn TEXT NOT NULL DEFAULT '';
        ALTER TABLE jobs ADD COLUMN model TEXT NOT NULL DEFAULT '';
        ALTER TABLE jobs ADD COLUMN handover TEXT NOT NULL DEFAULT '';
        ALTER TABLE jobs ADD COLUMN handover_seed {bytes};
        ALTER TABLE jobs ADD COLUMN handover_at {real};
        ALTER TABLE jobs ADD COLUMN handover_reason TEXT NOT NULL DEFAULT '';
        CREATE INDEX IF NOT EXISTS jobs_handover ON jobs (handover, batch)
        """,
        # 5: what a placement asks of a long queue, by index (bench/bench_scale.py):
        # has anything targeted this serial, and the waiting jobs bound to it.
        """
        CREATE INDEX IF NOT EXISTS jobs_burned_serial ON jobs (burned_serial);
        CREATE INDEX IF NOT EXISTS jobs_queued_serial ON jobs (serial, id)
            WHERE state = 'queued'
        """,
        # 6: the duplicate digest is keyed (an HMAC) everywhere; rows marked 0 were made
        # with a bare SHA-256 on a station's own queue and are re-keyed (or dropped, where
        # the seed is gone) when the queue opens (JobQueue._rekey_digests).
        """
        ALTER TABLE jobs ADD COLUMN digest_keyed INTEGER NOT NULL DEFAULT 0
        """,
        # 7: the free waiting jobs in queue order, and nothing else (bench/bench_scale.py):
        # a claim takes the first of them with one statement; without it the planner
        # walked the primary key over every burned job older than the oldest waiting one.
        """
        CREATE INDEX IF NOT EXISTS jobs_waiting ON jobs (id) WHERE state = 'queued' AND serial = ''
        """,
    ),
)

PARTS = (REGISTRY, QUEUE)


def _sql(db: Database, migration: str) -> str:
    return migration.format(**db.types)


def versions(db: Database, parts: tuple[Part, ...]) -> dict[str, int]:
    """Each part's version in ``db`` (0: not created)."""
    with db.lock:
        if db.shared:
            _meta_if_missing(db)
        else:
            db.execute(META)
        rows = dict(db.execute("SELECT key, value FROM meta").fetchall())
    return {p.name: int(rows.get(p.version_key, 0)) for p in parts}


def _meta_if_missing(db: Database) -> None:
    exists = db.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()[0]
    if not exists:
        raise SchemaMismatch(
            f"{db.location} holds no tokenstation schema yet: run `{MIGRATE_COMMAND}` once"
        )


def migrate(db: Database, parts: tuple[Part, ...]) -> dict[str, tuple[int, int]]:
    """Bring every part up to date; returns {part: (version before, version after)}.

    Each migration runs in its own transaction with the version it reaches; on a shared
    database an advisory lock keeps two stations from migrating at once.
    """
    done: dict[str, tuple[int, int]] = {}
    with db.lock:
        with db.transaction():
            if db.shared:
                db.execute("SELECT pg_advisory_xact_lock(hashtext('tokenstation schema'))")
            db.execute(META)
        for part in parts:
            before = _version(db, part)
            if before > part.version:
                raise SchemaMismatch(_newer(db, part, before))
            for number in range(before, part.version):
                with db.transaction():
                    if db.shared:
                        db.execute("SELECT pg_advisory_xact_lock(hashtext('tokenstation schema'))")
                    if _version(db, part) != number:
                        continue  # another station got there first
                    for statement in _sql(db, part.migrations[number]).split(";"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute(
                        "INSERT INTO meta (key, value) VALUES (?, ?) "
                        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        (part.version_key, str(number + 1)),
                    )
            done[part.name] = (before, part.version)
    return done


def _version(db: Database, part: Part) -> int:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (part.version_key,)).fetchone()
    return int(row[0]) if row else 0


def _newer(db: Database, part: Part, found: int) -> str:
    return (
        f"the {part.name} schema in {db.location} is version {found}, newer than this "
        f"tokenstation knows ({part.version}): upgrade tokenstation on this station"
    )


def require_current(db: Database, parts: tuple[Part, ...]) -> None:
    """Refuse (SchemaMismatch, naming the command to run) unless every part is current."""
    found = versions(db, parts)
    for part in parts:
        have = found[part.name]
        if have > part.version:
            raise SchemaMismatch(_newer(db, part, have))
        if have < part.version:
            raise SchemaMismatch(
                f"the {part.name} schema in {db.location} is version {have}, this "
                f"tokenstation needs {part.version}: run `{MIGRATE_COMMAND}`"
            )


def prepare(db: Database, parts: tuple[Part, ...]) -> None:
    """On opening: a station's own SQLite file is migrated; a shared database is checked."""
    if db.shared:
        require_current(db, parts)
    else:
        migrate(db, parts)
