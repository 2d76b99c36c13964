"""The persistent burn queue (SQLite, WAL, secure_delete): jobs and the files they came from.

A job holds its secret only while it waits; once burned (or removed) the secret is
overwritten (``PRAGMA secure_delete``) and only its fingerprint, issuer, account,
serial and times remain. The write-ahead log keeps old page images until a checkpoint,
so every erasure is followed by ``wal_checkpoint(TRUNCATE)``: the pages go to the main
file (where secure_delete has zeroed the freed bytes) and the log is cut to nothing.

Files are remembered by the SHA-256 of their bytes in the same transaction that queues
their jobs, so a crash between queuing and deleting the file never queues it twice. A
job left "burning" by a crash becomes "failed" at the next start: whether the token
holds the seed is unknown, so it is never re-burned without a person deciding.

States: queued -> burning -> burned, or -> failed (with the reason; retry puts it back
to queued while the secret is still held), or removed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tokenstation.daemon.intake.otpauth import OtpAccount
from tokenstation.daemon.safetext import utf8_safe
from tokenstation.daemon.sqlite_file import add_nullable_column, open_private
from tokenstation.daemon.token.secret import Secret
from tokenstation.daemon.token.settings import HmacAlgorithm, TokenSettings

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    state TEXT NOT NULL,
    secret BLOB,
    secret_hash TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    issuer TEXT NOT NULL DEFAULT '',
    account TEXT NOT NULL DEFAULT '',
    algorithm TEXT NOT NULL,
    period INTEGER NOT NULL,
    serial TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    updated REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '',
    burned_serial TEXT,
    burned_at REAL,
    profile INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, id);
CREATE INDEX IF NOT EXISTS jobs_hash ON jobs (secret_hash);
CREATE TABLE IF NOT EXISTS files (
    sha256 TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    verdict TEXT NOT NULL,
    at REAL NOT NULL
);
"""

WAITING = ("queued",)
LIVE = ("queued", "burning", "burned")


@dataclass(frozen=True)
class Job:
    """A burn job as the operator sees it (no secret)."""

    id: int
    state: str
    fingerprint: str
    issuer: str
    account: str
    algorithm: str
    period: int
    serial: str
    source: str
    created: float
    updated: float
    attempts: int
    reason: str
    burned_serial: str | None
    burned_at: float | None
    has_secret: bool = field(default=False)
    #: The Molto2 profile it went (or was going) into; None for single-profile tokens.
    profile: int | None = None

    def label(self) -> str:
        """issuer:account."""
        return f"{self.issuer}:{self.account}" if self.issuer else self.account or "(unnamed)"

    def settings(self, display_timeout: int) -> TokenSettings:
        """The token settings this job burns with."""
        return TokenSettings(HmacAlgorithm.parse(self.algorithm), self.period, display_timeout)

    def as_dict(self) -> dict[str, object]:
        """JSON/D-Bus form: a fingerprint, never the secret."""
        out: dict[str, object] = {
            "id": self.id,
            "state": self.state,
            "label": self.label(),
            "issuer": self.issuer,
            "account": self.account,
            "algorithm": self.algorithm,
            "period": self.period,
            "serial": self.serial,
            "source": self.source,
            "created": round(self.created, 3),
            "updated": round(self.updated, 3),
            "attempts": self.attempts,
            "reason": self.reason,
            "secret_fingerprint": self.fingerprint,
        }
        if self.burned_serial:  # the token it went onto (or was going onto)
            out["burned_serial" if self.state == "burned" else "target_serial"] = self.burned_serial
        if self.burned_at is not None:
            out["burned_at"] = self.burned_at
        if self.profile is not None:
            out["profile"] = self.profile
        return out


@dataclass(frozen=True)
class NewJob:
    """What to queue: an account, maybe bound to a serial, and where it came from."""

    account: OtpAccount = field(repr=False)
    serial: str = ""
    source: str = ""


@dataclass
class Intake:
    """What queuing a file did."""

    queued: list[Job] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)  # labels already queued or burned
    seen_before: bool = False  # the same bytes were processed already


def secret_hash(secret: Secret) -> str:
    """Full SHA-256 of the secret, for recognising duplicates."""
    return hashlib.sha256(secret.reveal()).hexdigest()


class JobQueue:
    """The queue database (thread-safe: one connection behind a lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = open_private(
            path, ("journal_mode=WAL", "synchronous=FULL", "secure_delete=ON", "busy_timeout=5000")
        )
        with self._lock:
            self._db.executescript(_SCHEMA)
            add_nullable_column(self._db, "jobs", "profile", "INTEGER")
            self._scrub()  # a stop between an erasure and its checkpoint left old pages
        for sidecar in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            if sidecar.exists():
                os.chmod(sidecar, 0o600)

    def _scrub(self) -> None:
        """After a secret was erased (lock held): no old page image of it stays in the WAL."""
        busy, _log, _done = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            log.warning(
                "the queue's write-ahead log could not be truncated now (a reader holds it); "
                "it will be at the next erasure or at stop"
            )

    def close(self) -> None:
        """Checkpoint (so freed pages are overwritten in the main file) and close."""
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()

    # -- intake ----------------------------------------------------------------------------

    def file_seen(self, sha256: str) -> bool:
        """True when a file with these bytes was processed before."""
        with self._lock:
            row = self._db.execute("SELECT 1 FROM files WHERE sha256 = ?", (sha256,)).fetchone()
        return row is not None

    def take(self, sha256: str, name: str, verdict: str, jobs: Iterable[NewJob]) -> Intake:
        """Record the file and queue its jobs in one transaction (idempotent per sha256)."""
        intake = Intake()
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if self._db.execute("SELECT 1 FROM files WHERE sha256 = ?", (sha256,)).fetchone():
                    self._db.execute("COMMIT")
                    intake.seen_before = True
                    return intake
                self._db.execute(
                    "INSERT INTO files VALUES (?, ?, ?, ?)", (sha256, utf8_safe(name), verdict, now)
                )
                for job in jobs:
                    h = secret_hash(job.account.secret)
                    dup = self._db.execute(
                        "SELECT state FROM jobs WHERE secret_hash = ? AND state IN (?, ?, ?)",
                        (h, *LIVE),
                    ).fetchone()
                    if dup:
                        intake.duplicates.append(f"{job.account.label()} ({dup[0]})")
                        continue
                    a = job.account
                    cur = self._db.execute(
                        "INSERT INTO jobs (state, secret, secret_hash, fingerprint, issuer, "
                        "account, algorithm, period, serial, source, created, updated) "
                        "VALUES ('queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            a.secret.reveal(),
                            h,
                            a.secret.fingerprint,
                            utf8_safe(a.issuer),
                            utf8_safe(a.account),
                            a.algorithm,
                            a.period,
                            job.serial,
                            utf8_safe(job.source),
                            now,
                            now,
                        ),
                    )
                    intake.queued.append(self._get(int(cur.lastrowid or 0)))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return intake

    # -- reading ---------------------------------------------------------------------------

    def _get(self, job_id: int) -> Job:
        row = self._db.execute(_JOB_SELECT + " WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise KeyError(job_id)
        return _job(row)

    def get(self, job_id: int) -> Job | None:
        """One job, or None."""
        with self._lock:
            try:
                return self._get(job_id)
            except KeyError:
                return None

    def jobs(
        self, states: Iterable[str] | None = None, *, offset: int = 0, limit: int = -1
    ) -> list[Job]:
        """Jobs in ``states`` (all when None), oldest first; a page with offset/limit."""
        where, args = _where(states)
        with self._lock:
            rows = self._db.execute(
                _JOB_SELECT + where + " ORDER BY id LIMIT ? OFFSET ?",
                (*args, limit, max(0, offset)),
            ).fetchall()
        return [_job(r) for r in rows]

    def total(self, states: Iterable[str] | None = None) -> int:
        """How many jobs are in ``states`` (all when None)."""
        where, args = _where(states)
        with self._lock:
            (n,) = self._db.execute("SELECT COUNT(*) FROM jobs" + where, args).fetchone()
        return int(n)

    def count(self, state: str) -> int:
        """How many jobs are in ``state``."""
        with self._lock:
            (n,) = self._db.execute(
                "SELECT COUNT(*) FROM jobs WHERE state = ?", (state,)
            ).fetchone()
        return int(n)

    def waiting(self) -> int:
        """How many jobs wait for a token."""
        return self.count("queued")

    def targeted(self, serial: str) -> bool:
        """True when a burn onto ``serial`` started here (burning, burned or failed since)."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM jobs WHERE burned_serial = ? "
                "AND state IN ('burning', 'burned', 'failed') LIMIT 1",
                (serial,),
            ).fetchone()
        return row is not None

    def secret(self, job_id: int) -> Secret:
        """The job's secret (only while it is held)."""
        with self._lock:
            row = self._db.execute("SELECT secret FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None or row[0] is None:
            raise KeyError(f"job {job_id} holds no secret")
        return Secret(bytes(row[0]))

    # -- transitions -----------------------------------------------------------------------

    def _set(
        self, job_id: int, sql: str, args: tuple[object, ...], expect: str, *, scrub: bool = False
    ) -> Job:
        with self._lock:
            cur = self._db.execute(
                f"UPDATE jobs SET {sql}, updated = ? WHERE id = ? AND state = ?",
                (*args, time.time(), job_id, expect),
            )
            if cur.rowcount != 1:
                job = self._db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
                raise ValueError(f"job {job_id} is {job[0] if job else 'unknown'}, not {expect}")
            if scrub:
                self._scrub()
            return self._get(job_id)

    def start_burn(self, job_id: int, serial: str, profile: int | None = None) -> Job:
        """queued -> burning onto ``serial`` (and a Molto2's ``profile``): the burn's intent,
        durable (synchronous=FULL) before the token is touched, resolved by :meth:`recover`
        after a crash."""
        return self._set(
            job_id,
            "state = 'burning', attempts = attempts + 1, burned_serial = ?, profile = ?",
            (serial, profile),
            "queued",
        )

    def interrupted(self, job_id: int, reason: str) -> Job:
        """burning stays burning, with the reason: the token left after its seed write was
        sent, so whether the seed landed is read from the profile when it comes back."""
        return self._set(job_id, "reason = ?", (reason,), "burning")

    def interrupted_burns(self, serial: str) -> list[Job]:
        """Molto2 burns onto ``serial`` left burning by a token pulled mid-write."""
        with self._lock:
            rows = self._db.execute(
                _JOB_SELECT + " WHERE state = 'burning' AND burned_serial = ? "
                "AND profile IS NOT NULL ORDER BY id",
                (serial,),
            ).fetchall()
        return [_job(r) for r in rows]

    def burned(self, job_id: int, serial: str) -> Job:
        """burning -> burned; the secret is erased (and scrubbed from the WAL)."""
        return self._set(
            job_id,
            "state = 'burned', secret = NULL, burned_serial = ?, burned_at = ?, reason = ''",
            (serial, time.time()),
            "burning",
            scrub=True,
        )

    def back_to_queue(self, job_id: int, reason: str) -> Job:
        """burning -> queued: nothing was written (refused before writing, token gone)."""
        return self._set(
            job_id,
            "state = 'queued', reason = ?, burned_serial = NULL, profile = NULL",
            (reason,),
            "burning",
        )

    def failed(self, job_id: int, reason: str) -> Job:
        """burning -> failed: the outcome on the token is unknown or bad."""
        return self._set(job_id, "state = 'failed', reason = ?", (reason,), "burning")

    def retry(self, job_id: int) -> Job:
        """failed -> queued (the secret is still held)."""
        return self._set(job_id, "state = 'queued', reason = ''", (), "failed")

    def remove(self, job_id: int) -> Job:
        """queued or failed -> removed; the secret is erased."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE jobs SET state = 'removed', secret = NULL, updated = ? "
                "WHERE id = ? AND state IN ('queued', 'failed')",
                (time.time(), job_id),
            )
            if cur.rowcount != 1:
                raise ValueError(f"job {job_id} cannot be removed (not queued or failed)")
            self._scrub()
            return self._get(job_id)

    def recover(self) -> list[Job]:
        """At start: jobs a crash left 'burning' become 'failed' with the reason; a Molto2
        burn (its profile known) stays 'burning', settled by that profile's seed flag
        when the Molto2 is placed (a single-profile token cannot tell)."""
        stuck = self.jobs(["burning"])
        for job in stuck:
            if job.profile is not None:
                self.interrupted(
                    job.id,
                    f"the daemon stopped during this burn into profile {job.profile}; when "
                    "that Molto2 is placed, the profile's seed flag decides (set: only its "
                    "title and settings are written; clear: the seed is written)",
                )
                continue
            self.failed(
                job.id,
                "the daemon stopped during this burn; the token may or may not hold the "
                "seed: check it (power-cycle, compare the code) and retry only if it does not",
            )
        return stuck


_JOB_SELECT = (
    "SELECT id, state, fingerprint, issuer, account, algorithm, period, serial, source, "
    "created, updated, attempts, reason, burned_serial, burned_at, secret IS NOT NULL, "
    "profile FROM jobs"
)


def _where(states: Iterable[str] | None) -> tuple[str, tuple[str, ...]]:
    if states is None:
        return "", ()
    wanted = tuple(states)
    return f" WHERE state IN ({','.join('?' * len(wanted))})", wanted


def _job(row: tuple[object, ...]) -> Job:
    profile = row[16]
    return Job(
        *row[:15],  # type: ignore[arg-type, misc]
        has_secret=bool(row[15]),
        profile=int(str(profile)) if profile is not None else None,
    )
