"""Write the held seeds to a hand-over file: atomically, 0600, in burn order; then mark them.

The file is written to a temporary name beside it (O_EXCL, 0600, never through a link),
synced, and renamed over the target; a failure removes the temporary. Only then are the
seeds it carries marked exported (each stays sealed until erased); a record the format
cannot carry is named and stays pending.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from tokenstation.daemon.handover.formats import Format, Progress, render
from tokenstation.daemon.handover.held import held_records
from tokenstation.daemon.handover.protection import Protection
from tokenstation.daemon.provisioning.queue import JobQueue
from tokenstation.daemon.token.problem import Problem, ProblemKind


class NothingToExport(Problem):
    """No held seed (of the batch) the format can carry: no file written."""

    kind = ProblemKind.REFUSED

    def __init__(self, message: str, left: list[dict[str, object]]) -> None:
        super().__init__(message)
        self.left = left


@dataclass(frozen=True)
class Exported:
    """What an export wrote (no seed): the jobs in the file and those left pending."""

    out: Path
    job_ids: list[int]
    serials: list[str]
    left: list[dict[str, object]] = field(default_factory=list)


def write_atomically(out: Path, data: bytes) -> None:
    """``data`` to ``out``: a 0600 temporary beside it, synced, renamed over it."""
    folder = out.parent
    tmp = folder / f".{out.name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def export(
    queue: JobQueue,
    fmt: Format,
    protection: Protection,
    out: Path,
    batch: str | None = None,
    *,
    progress: Progress | None = None,
) -> Exported:
    """Write every held seed (one batch) that ``fmt`` carries to ``out``; mark them.
    ``progress(done, total)`` as the records are rendered (it changes nothing written)."""
    held = held_records(queue, batch)
    ids = {id(r): job_id for job_id, r in held}
    rendered = render(fmt, [r for _, r in held], protection, progress)
    left: list[dict[str, object]] = [
        {"job_id": ids[id(r)], "serial": r.serial, "label": r.label, "reason": why}
        for r, why in rendered.left
    ]
    if not rendered.written:
        which = f" of batch {batch}" if batch else ""
        raise NothingToExport(
            f"no burned token{which} waits for its hand-over"
            if not held
            else f"none of the {len(held)} held seed(s){which} fits {fmt.name}",
            left,
        )
    write_atomically(out, rendered.data)
    job_ids = [ids[id(r)] for r in rendered.written]
    queue.mark_exported(job_ids)
    return Exported(out, job_ids, [r.serial for r in rendered.written], left)
