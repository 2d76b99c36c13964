"""The persistent burn queue: jobs and the files they came from.

By default a SQLite file of this station (WAL, secure_delete); with ``[store] url`` a
PostgreSQL database several stations share. There a claim is one statement that takes
its row with ``SELECT ... FOR UPDATE SKIP LOCKED`` and holds it as a lease (the
station's name and an expiry it renews while it burns); seeds are sealed by the
stations (``SecretBox``), and every change is announced to the other stations (NOTIFY).

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

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tokenstation.daemon.intake.otpauth import OtpAccount
from tokenstation.daemon.safetext import utf8_safe
from tokenstation.daemon.storage import schema
from tokenstation.daemon.storage.database import Database, NotifyHandler
from tokenstation.daemon.storage.part import StoredPart
from tokenstation.daemon.storage.secretbox import KeyProblem, SecretBox, init_key
from tokenstation.daemon.token.problem import Problem, ProblemKind
from tokenstation.daemon.token.secret import Secret
from tokenstation.daemon.token.settings import HmacAlgorithm, TokenSettings

log = logging.getLogger(__name__)

SQLITE_PRAGMAS = ("journal_mode=WAL", "synchronous=FULL", "secure_delete=ON", "busy_timeout=5000")

#: The single-station key that seals generated seeds, beside the queue file.
HANDOVER_KEY = "handover.key"

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
    station: str = ""  # where it was queued
    claimed_by: str = ""  # the station that burns (or burned, or tried) it
    #: The Molto2 profile it went (or was going) into; None for single-profile tokens.
    profile: int | None = None
    #: A seed made here (issue 23): its batch, the user it is for, the model it went onto.
    batch: str = ""
    upn: str = ""
    model: str = ""
    #: '' (not a generated seed), or after its burn pending | exported | pushed | erased.
    handover: str = ""
    handover_at: float | None = None
    handover_reason: str = ""

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
        if self.station:
            out["station"] = self.station
        if self.claimed_by:
            out["claimed_by"] = self.claimed_by
        if self.profile is not None:
            out["profile"] = self.profile
        if self.batch:
            out["batch"] = self.batch
            out["upn"] = self.upn
            if self.handover:
                out["handover"] = self.handover
            if self.model:
                out["model"] = self.model
            if self.handover_reason:
                out["handover_reason"] = self.handover_reason
        return out


@dataclass(frozen=True)
class NewJob:
    """What to queue: an account, maybe bound to a serial, and where it came from."""

    account: OtpAccount = field(repr=False)
    serial: str = ""
    source: str = ""
    upn: str = ""  # a generated seed's user (its batch is given to add_generated)


@dataclass
class Intake:
    """What queuing a file did."""

    queued: list[Job] = field(default_factory=list)
    #: The jobs already holding a secret in the file (queued, burning or burned), one
    #: entry per account not queued: "job 4, Acme:carol (queued)".
    duplicates: list[str] = field(default_factory=list)
    seen_before: bool = False  # the same bytes were processed already


def holder_words(job_id: int, issuer: str, account: str, state: str) -> str:
    """The job that already holds a secret, as a refusal names it: "job 4, Acme:carol
    (queued)" (never the account being refused, which may be named otherwise)."""
    label = f"{issuer}:{account}" if issuer else account or "(unnamed)"
    return f"job {job_id}, {label} ({state})"


class SealBroken(Problem):
    """A job's sealed seed does not open with this station's key."""

    kind = ProblemKind.FAILED


class JobQueue(StoredPart):
    """The queue database (thread-safe: one connection behind a lock).

    ``target`` is this station's SQLite file or an open shared :class:`Database`;
    ``station`` names this station on the jobs it queues and claims; ``box`` seals the
    seeds (required on a shared database); ``lease_s`` is how long a claim outlives
    the last renewal of a station that stopped answering.
    """

    def __init__(
        self,
        target: Path | Database,
        *,
        station: str = "",
        box: SecretBox | None = None,
        lease_s: float = 30.0,
    ) -> None:
        if not isinstance(target, Path) and target.shared and box is None:
            raise ValueError("a shared queue needs a SecretBox: seeds are sealed there")
        super().__init__(target, SQLITE_PRAGMAS, schema.QUEUE, station)
        self.box = box
        self._local_box: SecretBox | None = None
        self.lease_s = lease_s
        #: Called with what changed after every change this station makes (any thread).
        self.on_change: NotifyHandler | None = None
        # who sent a notice: never a space in it (a name may have one), so it ends the tag
        self.tag = f"{quote(station, safe='')}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
        with self._lock:
            self._db.scrub()  # a stop between an erasure and its checkpoint left old pages
        self._rekey_digests()
        if self.path is not None:
            for sidecar in (
                self.path.with_name(self.path.name + "-wal"),
                self.path.with_name(self.path.name + "-shm"),
            ):
                if sidecar.exists():
                    os.chmod(sidecar, 0o600)

    def close(self) -> None:
        """Checkpoint (so freed pages are overwritten in the main file) and close."""
        with self._lock:
            self._db.scrub()
            self._db.close()

    # -- other stations ----------------------------------------------------------------------

    def hold_name(self) -> None:
        """On a shared queue: hold this station's name while it runs, or check it still
        does (NameTaken when another live station has the name; no-op on own files)."""
        self._db.hold_name(self.station)

    def check_key(self) -> None:
        """On a shared queue: refuse (KeyProblem) a store key other than the database's.

        The first station to open the database records its key's id (an HMAC of the key,
        which reveals nothing of it) in ``meta``; a station with another key file could
        open no seed another station sealed, and the seeds it sealed nobody else could:
        it is refused at start, before it queues or claims anything."""
        if self.box is None or not self._db.shared:
            return
        with self._db.transaction():
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES ('store_key_id', ?) "
                "ON CONFLICT (key) DO NOTHING",
                (self.box.key_id,),
            )
            (held,) = self._db.execute(
                "SELECT value FROM meta WHERE key = 'store_key_id'"
            ).fetchone()
        if held != self.box.key_id:
            raise KeyProblem(
                f"this station's store key (id {self.box.key_id}) is not the one the seeds "
                f"in {self._db.location} are sealed with (id {held}): copy the key file of "
                "the other stations (0600) to this one and name it in [store] key_file"
            )

    def _changed(self, what: str, job_id: int = 0, *, told: bool = False) -> None:
        """Tell this station's watcher (:attr:`on_change`) and the other stations (unless
        ``told`` already, inside the change's transaction: see :meth:`_tell`)."""
        if self.on_change is not None:
            self.on_change(what)
        if self._db.shared and not told:
            self._db.notify(f"{self.tag} {what} {job_id}")

    def _tell(self, what: str, job_id: int) -> None:
        """Inside a transaction: the other stations are told at its commit (one round
        trip fewer than after it, and nothing told if it does not commit)."""
        if self._db.shared:
            self._db.notify(f"{self.tag} {what} {job_id}")

    def listen(self, on_change: NotifyHandler, on_state: NotifyState) -> None:
        """``on_change(what)`` when another station changes the queue (a listener thread);
        ``on_state(reachable)`` when the shared database goes away or comes back."""

        own = self.tag + " "

        def handler(payload: str) -> None:
            if not payload.startswith(own):
                on_change(payload.partition(" ")[2])

        self._db.listen(handler, on_state)

    # -- intake ----------------------------------------------------------------------------

    def file_digest(self, data: bytes) -> str:
        """How a file's bytes are remembered: keyed (HMAC), as the seeds' digests are."""
        return self._handover_box().digest(data)

    def _secret_hash(self, secret: Secret) -> str:
        """The keyed digest (HMAC-SHA256) a duplicate is recognised by: with the store key
        on a shared database, else this station's queue key; never a bare hash."""
        return self._handover_box().digest(secret.reveal())

    def _rekey_digests(self) -> None:
        """Digests from before queue schema 6 were bare SHA-256 on a station's own queue
        (a shared database's were always keyed): re-key them where the seed is still
        held, drop them where it is gone, then scrub the old pages."""
        if self.box is not None:  # a shared database: keyed from the start, and it may
            return  # be away at start (a station still starts and reads tokens)
        with self._lock:
            rows = self._db.execute(
                "SELECT id, secret, batch FROM jobs WHERE digest_keyed = 0"
            ).fetchall()
            if not rows:
                return
            with self._db.transaction():
                for job_id, secret, batch in rows:
                    keyed = (
                        self._handover_box().digest(bytes(secret))
                        if secret is not None and not batch  # a batch's seed is sealed
                        else ""  # the seed is gone: nothing left to recognise it by
                    )
                    self._db.execute(
                        "UPDATE jobs SET secret_hash = ?, digest_keyed = 1 WHERE id = ?",
                        (keyed, job_id),
                    )
            self._db.scrub()

    def file_seen(self, sha256: str) -> bool:
        """True when a file with these bytes was processed before."""
        with self._lock:
            row = self._db.execute("SELECT 1 FROM files WHERE sha256 = ?", (sha256,)).fetchone()
        return row is not None

    def take(self, sha256: str, name: str, verdict: str, jobs: Iterable[NewJob]) -> Intake:
        """Record the file and queue its jobs in one transaction (idempotent per sha256)."""
        intake = Intake()
        now = time.time()
        with self._db.transaction():
            if self._db.execute("SELECT 1 FROM files WHERE sha256 = ?", (sha256,)).fetchone():
                intake.seen_before = True
                return intake
            self._db.execute(
                "INSERT INTO files VALUES (?, ?, ?, ?)", (sha256, utf8_safe(name), verdict, now)
            )
            for job in jobs:
                self._insert(job, now, intake)
        if intake.queued:
            self._changed("added", intake.queued[0].id)
        return intake

    def add_generated(
        self,
        batch: str,
        jobs: Iterable[NewJob],
        progress: Callable[[int], object] | None = None,
    ) -> Intake:
        """Queue seeds made here as batch ``batch`` (one transaction); each is sealed from
        the start (the store key, or on a single station the local hand-over key).
        ``progress(n)`` after each of the jobs (inside the transaction: none is queued
        until all are)."""
        intake = Intake()
        now = time.time()
        with self._db.transaction():
            for n, job in enumerate(jobs, 1):
                self._insert(job, now, intake, batch=batch)
                if progress is not None:
                    progress(n)
        if intake.queued:
            self._changed("added", intake.queued[0].id)
        return intake

    def _insert(self, job: NewJob, now: float, intake: Intake, *, batch: str = "") -> None:
        """One job (inside a transaction), unless its secret is queued or burned already."""
        h = self._secret_hash(job.account.secret)
        dup = self._db.execute(
            "SELECT id, issuer, account, state FROM jobs WHERE secret_hash = ? "
            "AND state IN (?, ?, ?) ORDER BY id LIMIT 1",
            (h, *LIVE),
        ).fetchone()
        if dup:
            intake.duplicates.append(holder_words(*dup))
            return
        a = job.account
        box = self._handover_box() if batch else self.box
        (job_id,) = self._db.execute(
            "INSERT INTO jobs (state, secret, secret_hash, fingerprint, issuer, "
            "account, algorithm, period, serial, source, created, updated, station, "
            "batch, upn, digest_keyed) "
            "VALUES ('queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1) RETURNING id",
            (
                None if box else a.secret.reveal(),
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
                self.station,
                batch,
                utf8_safe(job.upn),
            ),
        ).fetchone()
        if box:
            sealed = box.seal(a.secret.reveal(), int(job_id), job.serial)
            self._db.execute("UPDATE jobs SET secret = ? WHERE id = ?", (sealed, job_id))
        intake.queued.append(self._get(int(job_id)))

    def _handover_box(self) -> SecretBox:
        """What seals a generated seed: the store key on a shared database, else this
        station's hand-over key file beside the queue (made on first use, 0600)."""
        if self.box is not None:
            return self.box
        if self._local_box is None:
            assert self.path is not None  # an own queue is a file
            key_file = self.path.with_name(HANDOVER_KEY)
            if not key_file.exists():
                with contextlib.suppress(KeyProblem):  # another process made it just now
                    init_key(key_file)
            self._local_box = SecretBox.load(key_file)
        return self._local_box

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
        # SQLite takes -1 for "no limit"; PostgreSQL takes NULL.
        bound = limit if limit >= 0 else (None if self.shared else -1)
        with self._lock:
            rows = self._db.execute(
                _JOB_SELECT + where + " ORDER BY id LIMIT ? OFFSET ?",
                (*args, bound, max(0, offset)),
            ).fetchall()
        return [_job(r) for r in rows]

    def claimable(self, serial: str, limit: int = 32) -> list[Job]:
        """What a token placed now could take: the waiting jobs bound to ``serial`` and
        the ``limit`` oldest waiting jobs bound to no token, oldest first in each.

        Two index scans whatever the queue's length (a placement used to read every
        waiting job: 0.4 s at 50,000, more with stations side by side)."""
        with self._lock:
            bound = (
                self._db.execute(
                    _JOB_SELECT + " WHERE state = 'queued' AND serial = ? ORDER BY id",
                    (serial,),
                ).fetchall()
                if serial
                else []
            )
            free = self._db.execute(
                _JOB_SELECT + " WHERE state = 'queued' AND serial = '' ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
        return [_job(r) for r in (*bound, *free)]

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

    def tally(self) -> tuple[int, int, dict[str, int]]:
        """The counts GetStatus shows, read while holding the queue once (the file threads
        take turns with it): jobs waiting, jobs failed, and burned generated seeds in each
        hand-over state."""
        with self._lock:
            counts = dict(
                self._db.execute(
                    "SELECT state, COUNT(*) FROM jobs WHERE state IN ('queued', 'failed') "
                    "GROUP BY state"
                ).fetchall()
            )
            handover = self._handover_counts()
        return int(counts.get("queued", 0)), int(counts.get("failed", 0)), handover

    def targeted(self, serial: str) -> bool:
        """True when a burn onto ``serial`` started (burning, burned or failed since),
        at this station or, on a shared queue, at any."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM jobs WHERE burned_serial = ? "
                "AND state IN ('burning', 'burned', 'failed') LIMIT 1",
                (serial,),
            ).fetchone()
        return row is not None

    def secret(self, job_id: int) -> Secret:
        """The job's secret (only while it is held); SealBroken when this key cannot open it."""
        with self._lock:
            row = self._db.execute(
                "SELECT secret, serial, batch FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
        if row is None:
            raise KeyError(f"job {job_id} holds no secret")
        return self._open(job_id, *row)

    def _open(self, job_id: int, stored: object, serial: str, batch: str) -> Secret:
        """A job's stored secret, opened with the key that sealed it (if sealed)."""
        if stored is None:
            raise KeyError(f"job {job_id} holds no secret")
        assert isinstance(stored, bytes | bytearray | memoryview)
        box = self._handover_box() if batch else self.box
        if box is None:
            return Secret(bytes(stored))
        plain = box.open(bytes(stored), job_id, str(serial))
        if plain is None:
            raise SealBroken(
                f"the seed of job {job_id} does not open with this station's store key: "
                "every station of the database needs the same key file"
            )
        return Secret(plain)

    # -- transitions -----------------------------------------------------------------------

    def _set(
        self, job_id: int, sql: str, args: tuple[object, ...], expect: str, *, scrub: bool = False
    ) -> Job:
        with self._lock:
            rows = self._db.execute(
                f"UPDATE jobs SET {sql}, updated = ? WHERE id = ? AND state = ? "
                f"RETURNING {_JOB_FIELDS}",
                (*args, time.time(), job_id, expect),
            ).fetchall()
            if len(rows) != 1:
                job = self._db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
                raise ValueError(f"job {job_id} is {job[0] if job else 'unknown'}, not {expect}")
            if scrub:
                self._db.scrub()
        done = _job(rows[0])
        self._changed(done.state, job_id)
        return done

    def start_burn(self, job_id: int, serial: str, profile: int | None = None) -> Job:
        """queued -> burning onto ``serial`` (and a Molto2's ``profile``): the claim and the
        burn's intent, durable before the token is touched, resolved by :meth:`recover`
        (or, on a shared queue, by :meth:`expire` at another station once the lease runs
        out) after a crash.

        One statement: the row is chosen with ``FOR UPDATE SKIP LOCKED`` on a shared
        queue and changed at once; of two stations claiming one job, one gets it and the
        other is told at once (ValueError), never kept waiting for the other's lock."""
        return self._claim(job_id, serial, profile, None, with_seed=False)[0]

    def claim(
        self, job_id: int, serial: str, profile: int | None = None, *, like: Job | None = None
    ) -> tuple[Job, Secret]:
        """:meth:`start_burn` with the seed, opened inside the claim's transaction: a seed
        this station's key cannot open (SealBroken) rolls the claim back, nothing claimed.

        With ``like`` (the free job a station-mode placement chose): the oldest free
        waiting job with its algorithm and period from it on (the older ones were passed
        over), in the same one statement, skipping the rows other stations are claiming
        at that moment. Stations placing tokens together so each take the next job
        instead of all racing for the oldest one and all but one reading the queue again;
        the job is as good for the token (the same settings), oldest first stays the
        order."""
        job, seed = self._claim(job_id, serial, profile, like, with_seed=True)
        assert seed is not None
        return job, seed

    def _claim(
        self, job_id: int, serial: str, profile: int | None, like: Job | None, *, with_seed: bool
    ) -> tuple[Job, Secret | None]:
        if like is not None:
            pick = (
                "SELECT id FROM jobs WHERE state = 'queued' AND serial = '' AND id >= ? "
                "AND algorithm = ? AND period = ? ORDER BY id LIMIT 1"
            )
            picked: tuple[object, ...] = (like.id, like.algorithm, like.period)
        else:
            pick, picked = "SELECT id FROM jobs WHERE id = ? AND state = 'queued'", (job_id,)
        with self._db.transaction():
            rows = self._db.execute(
                "UPDATE jobs SET state = 'burning', attempts = attempts + 1, burned_serial = ?, "
                f"profile = ?, claimed_by = ?, lease_until = {self._db.now} + ?, updated = ? "
                f"WHERE state = 'queued' AND id = ({pick}{self._db.skip_locked}) "
                f"RETURNING {_JOB_FIELDS}, secret, batch",
                (serial, profile, self.station, self.lease_s, time.time(), *picked),
            ).fetchall()
            if not rows:
                raise ValueError(self._not_claimable(job_id, like is not None))
            job = _job(rows[0][:-2])
            seed = self._open(job.id, rows[0][-2], job.serial, rows[0][-1]) if with_seed else None
            self._tell("claimed", job.id)
        self._changed("claimed", job.id, told=True)
        return job, seed

    def claim_batch(
        self, job_ids: Sequence[int], serial: str, profiles: Sequence[int]
    ) -> list[tuple[Job, Secret]]:
        """Claim jobs for one card session into a Molto2's ``profiles``, in one
        transaction: the first of ``job_ids`` still queued (and not being claimed by
        another station) into the first profile, the next into the next, until the
        profiles or the jobs run out. Every intent is durable before the first seed write,
        with one commit for the batch. Jobs claimed or burned meanwhile are passed over; a
        seed this station's key does not open ends the batch before it (SealBroken when it
        is the first: nothing claimed). ValueError when none could be claimed."""
        out: list[tuple[Job, Secret]] = []
        with self._db.transaction():
            for job_id in job_ids:
                if len(out) == len(profiles):
                    break
                profile = profiles[len(out)]
                rows = self._db.execute(
                    "UPDATE jobs SET state = 'burning', attempts = attempts + 1, "
                    f"burned_serial = ?, profile = ?, claimed_by = ?, lease_until = "
                    f"{self._db.now} + ?, updated = ? WHERE state = 'queued' AND id = "
                    f"(SELECT id FROM jobs WHERE id = ? AND state = 'queued'"
                    f"{self._db.skip_locked}) RETURNING {_JOB_FIELDS}, secret, batch",
                    (serial, profile, self.station, self.lease_s, time.time(), job_id),
                ).fetchall()
                if not rows:
                    continue
                job = _job(rows[0][:-2])
                try:
                    seed = self._open(job.id, rows[0][-2], job.serial, rows[0][-1])
                except SealBroken:
                    if not out:
                        raise  # rolled back: nothing claimed
                    self._db.execute(  # this one only; the batch ends before it
                        "UPDATE jobs SET state = 'queued', attempts = attempts - 1, "
                        "burned_serial = NULL, profile = NULL, claimed_by = '', "
                        "lease_until = NULL WHERE id = ?",
                        (job.id,),
                    )
                    break
                out.append((job, seed))
                self._tell("claimed", job.id)
            if not out:
                raise ValueError(
                    self._not_claimable(job_ids[0], False) if job_ids else "no job to claim"
                )
        self._changed("claimed", out[-1][0].id, told=True)
        return out

    def _not_claimable(self, job_id: int, like: bool) -> str:
        """Why job ``job_id`` (or, with ``like``, any job like it) could not be claimed."""
        row = self._db.execute(
            "SELECT state, claimed_by FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
        others = "; no other waiting job has its settings" if like else ""
        if row is None:
            return f"job {job_id} is unknown, not queued"
        if row[0] == "queued":  # locked: another station's claim is being committed
            return f"job {job_id} is being claimed by another station{others}"
        by = f" (by {row[1]})" if row[1] and row[0] == "burning" else ""
        return f"job {job_id} is {row[0]}{by}, not queued{others}"

    def renew(self, job_ids: Iterable[int]) -> int:
        """Extend the leases of the claims this station knows it holds; how many.

        Only those: a claim whose commit was never confirmed here (the connection broke
        at that moment) is left to expire, as a dead station's would."""
        ids = tuple(job_ids)
        with self._lock:
            if not ids:  # still a statement: it tells whether the database answers
                self._db.execute("SELECT 1")
                return 0
            cur = self._db.execute(
                f"UPDATE jobs SET lease_until = {self._db.now} + ? WHERE state = 'burning' "
                f"AND claimed_by = ? AND id IN ({','.join('?' * len(ids))})",
                (self.lease_s, self.station, *ids),
            )
        return int(cur.rowcount)

    def interrupted(self, job_id: int, reason: str) -> Job:
        """burning stays burning, with the reason: the token left after its seed write was
        sent, so whether the seed landed is read from the profile when it comes back.

        Its lease ends (NULL: :meth:`expire` skips it): it waits for its Molto2 at the
        station that claimed it, however long that takes."""
        return self._set(job_id, "reason = ?, lease_until = NULL", (reason,), "burning")

    def interrupted_burns(self, serial: str) -> list[Job]:
        """Molto2 burns onto ``serial`` left burning (a token pulled mid-write, a stop).

        On a shared queue only this station's claims: its ledger (local to the station)
        knows which account is in which profile, so the station that claimed a burn
        settles it. The caller leaves out the burns it is running now."""
        mine = " AND claimed_by = ?" if self.shared else ""
        with self._lock:
            rows = self._db.execute(
                _JOB_SELECT + " WHERE state = 'burning' AND burned_serial = ? "
                "AND profile IS NOT NULL" + mine + " ORDER BY id",
                (serial, self.station) if self.shared else (serial,),
            ).fetchall()
        return [_job(r) for r in rows]

    def burned(self, job_id: int, serial: str, model: str = "") -> Job:
        """burning -> burned onto ``serial`` (a ``model``); the secret is erased (and
        scrubbed from the WAL), except a seed made here: it stays sealed, moved to the
        hand-over (pending) in the same statement, until it is exported or pushed."""
        return self._set(
            job_id, _BURNED + ", reason = ''", (serial, time.time(), model), "burning", scrub=True
        )

    def burned_batch(self, job_ids: Sequence[int], serial: str, model: str = "") -> list[Job]:
        """:meth:`burned` for the jobs of one card session, in one transaction and one
        scrub of the write-ahead log; all or none (ValueError: one was not burning)."""
        at, out = time.time(), []
        with self._db.transaction():
            for job_id in job_ids:
                rows = self._db.execute(
                    f"UPDATE jobs SET {_BURNED}, reason = '', updated = ? "
                    f"WHERE id = ? AND state = 'burning' RETURNING {_JOB_FIELDS}",
                    (serial, at, model, time.time(), job_id),
                ).fetchall()
                if len(rows) != 1:
                    raise ValueError(f"job {job_id} is not burning")
                out.append(_job(rows[0]))
                self._tell("burned", job_id)
        with self._lock:
            self._db.scrub()
        if out:
            self._changed("burned", out[-1].id, told=True)
        return out

    def settle_away(
        self, job_id: int, serial: str, at: float, reason: str, model: str = ""
    ) -> Job | None:
        """A burn this station made while the shared database was away: burning (or
        failed, its claim expired meanwhile at another station) -> burned, the secret
        erased, ``reason`` saying what happened. None when the job is in no such state
        (retried or removed meanwhile)."""
        with self._lock:
            cur = self._db.execute(
                f"UPDATE jobs SET {_BURNED}, reason = ?, updated = ? "
                "WHERE id = ? AND burned_serial = ? AND claimed_by = ? "
                "AND state IN ('burning', 'failed')",
                (serial, at, model, reason, time.time(), job_id, serial, self.station),
            )
            if cur.rowcount != 1:
                return None
            self._db.scrub()
            job = self._get(job_id)
        self._changed("burned", job_id)
        return job

    def back_to_queue(self, job_id: int, reason: str) -> Job:
        """burning -> queued: nothing was written (refused before writing, token gone)."""
        return self._set(
            job_id,
            "state = 'queued', reason = ?, burned_serial = NULL, claimed_by = '', "
            "lease_until = NULL, profile = NULL",
            (reason,),
            "burning",
        )

    def failed(self, job_id: int, reason: str) -> Job:
        """burning -> failed: the outcome on the token is unknown or bad."""
        return self._set(
            job_id, "state = 'failed', reason = ?, lease_until = NULL", (reason,), "burning"
        )

    def retry(self, job_id: int) -> Job:
        """failed -> queued (the secret is still held), its last target forgotten."""
        return self._set(
            job_id,
            "state = 'queued', reason = '', burned_serial = NULL, claimed_by = '', "
            "lease_until = NULL, profile = NULL",
            (),
            "failed",
        )

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
            self._db.scrub()
            job = self._get(job_id)
        self._changed("removed", job_id)
        return job

    def recover(self, keep: Iterable[int] = ()) -> list[Job]:
        """At start: jobs a crash left 'burning' become 'failed' with the reason; a Molto2
        burn (its profile known) stays 'burning', settled by that profile's seed flag
        when the Molto2 is placed (a single-profile token cannot tell).

        On a shared queue only this station's own claims: another station's are its
        own to settle, or :meth:`expire`'s once their lease has run out."""
        kept = set(keep)  # burns this station knows the outcome of (recorded later)
        stuck = [
            j
            for j in self.jobs(["burning"])
            if (not self.shared or j.claimed_by == self.station) and j.id not in kept
        ]
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

    def expire(self) -> list[Job]:
        """Claims whose lease ran out (their station stopped answering) become 'failed'.

        Never 'queued': the seed write may have begun, so the token may hold the seed;
        a person checks it and retries. Each expired claim is settled by one station."""
        if not self.shared:
            return []
        with self._db.transaction():
            rows = self._db.execute(
                "SELECT id, claimed_by FROM jobs WHERE state = 'burning' "
                f"AND lease_until < {self._db.now}" + self._db.skip_locked
            ).fetchall()
            for job_id, by in rows:
                self._db.execute(
                    "UPDATE jobs SET state = 'failed', reason = ?, lease_until = NULL, "
                    "updated = ? WHERE id = ?",
                    (
                        f"station {by or '(unnamed)'} stopped answering during this burn (its "
                        "claim expired); the token may or may not hold the seed: check it "
                        "(power-cycle, compare the code) and retry only if it does not",
                        time.time(),
                        job_id,
                    ),
                )
            expired = [self._get(int(job_id)) for job_id, _ in rows]
        for job in expired:
            self._changed("failed", job.id)
        return expired

    # -- the hand-over of seeds made here ---------------------------------------------------

    def held_seeds(
        self, batch: str | None = None, states: Iterable[str] = ("pending", "exported")
    ) -> list[tuple[Job, Secret]]:
        """Burned generated seeds still held (sealed), in burn order, opened: only for a
        hand-over about to write or send them. SealBroken when this key cannot open one."""
        wanted = tuple(states)
        marks = ",".join("?" * len(wanted))
        only = " AND batch = ?" if batch else ""
        with self._lock:
            rows = self._db.execute(
                _JOB_SELECT.replace(" FROM jobs", ", handover_seed FROM jobs")
                + f" WHERE state = 'burned' AND handover IN ({marks}) AND handover_seed "
                "IS NOT NULL" + only + " ORDER BY burned_at, id",
                (*wanted, batch) if batch else wanted,
            ).fetchall()
        box = self._handover_box()
        out: list[tuple[Job, Secret]] = []
        for row in rows:
            job = _job(row[:-1])
            plain = box.open(bytes(row[-1]), job.id, job.serial)
            if plain is None:
                raise SealBroken(
                    f"the held seed of job {job.id} does not open with this station's key: "
                    "every station of the database needs the same key file"
                )
            out.append((job, Secret(plain)))
        return out

    def mark_exported(self, job_ids: Iterable[int]) -> int:
        """pending -> exported (the seed stays sealed until erased); how many."""
        ids = tuple(job_ids)
        if not ids:
            return 0
        with self._lock:
            cur = self._db.execute(
                "UPDATE jobs SET handover = 'exported', handover_at = ?, handover_reason = '', "
                f"updated = ? WHERE handover IN ('pending', 'exported') "
                f"AND id IN ({','.join('?' * len(ids))})",
                (time.time(), time.time(), *ids),
            )
        self._changed("exported", ids[0])
        return int(cur.rowcount)

    def mark_pushed(self, job_id: int) -> Job:
        """pending -> pushed: the identity server holds it; the seed is erased here."""
        return self._set(
            job_id,
            "handover = 'pushed', handover_seed = NULL, handover_at = ?, handover_reason = ''",
            (time.time(),),
            "burned",
            scrub=True,
        )

    def handover_problem(self, job_id: int, reason: str) -> None:
        """A hand-over that did not happen (the seed stays sealed): why, for `status`."""
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET handover_reason = ? WHERE id = ? AND handover = 'pending'",
                (reason, job_id),
            )

    def erase_exported(self, batch: str | None = None, exported_before: float | None = None) -> int:
        """exported -> erased (one batch, or those exported before a time); how many.
        A seed never exported is never erased here."""
        where = " AND batch = ?" if batch else ""
        args: tuple[object, ...] = (time.time(),) + ((batch,) if batch else ())
        if exported_before is not None:
            where += " AND handover_at < ?"
            args += (exported_before,)
        with self._lock:
            cur = self._db.execute(
                "UPDATE jobs SET handover = 'erased', handover_seed = NULL, updated = ? "
                "WHERE handover = 'exported'" + where,
                args,
            )
            n = int(cur.rowcount)
            if n:
                self._db.scrub()
        if n:
            self._changed("erased")
        return n

    def handover_counts(self) -> dict[str, int]:
        """How many burned generated seeds are in each hand-over state."""
        with self._lock:
            return self._handover_counts()

    def _handover_counts(self) -> dict[str, int]:
        rows = self._db.execute(
            "SELECT handover, COUNT(*) FROM jobs WHERE handover > '' GROUP BY handover"
        ).fetchall()
        return {str(k): int(n) for k, n in rows}

    # -- the provisioning log ----------------------------------------------------------------

    def log_burn(self, row: Mapping[str, object]) -> None:
        """Append a provisioning-log row (columns named by the row's keys; no secret)."""
        columns = ", ".join(row)
        marks = ", ".join("?" * len(row))
        with self._lock:
            self._db.execute(
                f"INSERT INTO provisioning_log ({columns}) VALUES ({marks})",
                tuple(str(v) for v in row.values()),
            )


NotifyState = Callable[[bool], None]

#: burning -> burned onto ``serial`` at ``burned_at`` (a ``model``): the secret erased,
#: except a seed made here, moved sealed to the hand-over (pending) in the same statement.
_BURNED = (
    "state = 'burned', handover_seed = CASE WHEN batch <> '' THEN secret END, "
    "handover = CASE WHEN batch <> '' THEN 'pending' ELSE '' END, secret = NULL, "
    "burned_serial = ?, burned_at = ?, model = ?, lease_until = NULL"
)

_JOB_COLUMNS = (
    "id, state, fingerprint, issuer, account, algorithm, period, serial, source, "
    "created, updated, attempts, reason, burned_serial, burned_at"
)
_JOB_FIELDS = (
    f"{_JOB_COLUMNS}, secret IS NOT NULL, station, claimed_by, profile, "
    "batch, upn, model, handover, handover_at, handover_reason"
)
_JOB_SELECT = f"SELECT {_JOB_FIELDS} FROM jobs"


def _where(states: Iterable[str] | None) -> tuple[str, tuple[str, ...]]:
    if states is None:
        return "", ()
    wanted = tuple(states)
    return f" WHERE state IN ({','.join('?' * len(wanted))})", wanted


def _job(row: tuple[Any, ...]) -> Job:
    profile = row[18]
    return Job(  # type: ignore[misc]
        *row[:15],
        has_secret=bool(row[15]),
        station=str(row[16]),
        claimed_by=str(row[17]),
        profile=int(profile) if profile is not None else None,
        batch=str(row[19]),
        upn=str(row[20]),
        model=str(row[21]),
        handover=str(row[22]),
        handover_at=row[23],
        handover_reason=str(row[24]),
    )
