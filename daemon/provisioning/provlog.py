"""The provisioning log: one CSV row per seed burned (0600; no secret, a fingerprint),
the same for the daemon's burns and the command line's direct ones. On a shared
database the rows also go to its log, every station's burns in one place."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tokenstation.daemon.provisioning.csvsafe import SafeWriter

if TYPE_CHECKING:
    from tokenstation.daemon.provisioning.queue import JobQueue

LOG_FIELDS = (
    "time_utc",
    "station",
    "serial",
    "model",
    "issuer",
    "account",
    "secret_fingerprint",
    "algorithm",
    "period",
    "job_id",
    "source",
    "profile",  # the Molto2 profile ("" for single-profile tokens)
)


def row(
    *,
    at: float,
    station: str,
    serial: str,
    model: str,
    issuer: str,
    account: str,
    fingerprint: str,
    algorithm: str,
    period: int,
    job_id: int | str,
    source: str,
    profile: int | None = None,
) -> dict[str, object]:
    """One burn as the log's columns (``job_id`` "" for a burn that was no job)."""
    values = (
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)),
        station,
        serial,
        model,
        issuer,
        account,
        fingerprint,
        algorithm,
        period,
        job_id,
        source,
        "" if profile is None else profile,
    )
    return dict(zip(LOG_FIELDS, values, strict=True))


def append(log_path: Path, entry: dict[str, object], queue: JobQueue | None = None) -> None:
    """Append ``entry`` to the CSV (created 0600 with its header), flushed to disk; and
    to the shared database's log when ``queue`` is a shared one."""
    append_rows(log_path, [entry])
    if queue is not None and queue.shared:  # the shared log: every station's burns
        queue.log_burn(entry)


def append_rows(log_path: Path, entries: list[dict[str, object]]) -> None:
    """Append ``entries`` to the CSV (created 0600 with its header) with one flush to disk
    (the burns of one card session)."""
    new = not log_path.exists()
    # A log begun before Molto2 burns keeps its columns (the registry has the profile).
    columns = LOG_FIELDS if new or _has_profile_column(log_path) else LOG_FIELDS[:-1]
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", newline="", encoding="utf-8", errors="backslashreplace") as f:
        w = SafeWriter(f)
        if new:
            w.writerow(LOG_FIELDS)
        for entry in entries:
            w.writerow([entry[c] for c in columns])
        f.flush()
        os.fsync(f.fileno())


def _has_profile_column(path: Path) -> bool:
    """Whether an existing provisioning log's header has the profile column (a log begun
    before Molto2 burns keeps its columns; the registry has the profile then)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        return "profile" in f.readline().strip().split(",")
