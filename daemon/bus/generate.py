"""GenerateJobs: a batch of burn jobs whose seeds the daemon makes (no seed in the reply).

A caller that gives the option ``progress`` (a tag of its own) gets GenerateProgress
signals while the batch is queued: the tag, how many jobs are done and the total, at most
every :data:`PROGRESS_INTERVAL_S` (the first and the last always), counts only. The batch
stays one call and one transaction: its id, its labels and its all-or-nothing queueing
are what they are without the option.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import TYPE_CHECKING, Any

from tokenstation.daemon.bus import dbusio
from tokenstation.daemon.bus.ops import refuse_unknown
from tokenstation.daemon.events import ErrorKind, GenerateProgress
from tokenstation.daemon.handover.generate import (
    DEFAULT_ISSUER,
    Assignment,
    GenerateProblem,
    GenerateRequest,
    new_batch_id,
    new_jobs,
)
from tokenstation.daemon.station import StationError
from tokenstation.daemon.storage.database import StoreUnavailable
from tokenstation.daemon.storage.secretbox import KeyProblem

if TYPE_CHECKING:
    from tokenstation.daemon.provisioning.provisioner import Provisioner
    from tokenstation.daemon.station import Station

#: The shortest time between two GenerateProgress signals of one call.
PROGRESS_INTERVAL_S = 0.1
_TAG = re.compile(r"[A-Za-z0-9_-]{1,64}")

_KINDS: dict[str, type] = {
    "count": int,
    "issuer": str,
    "algorithm": str,
    "period": int,
    "upns": list,
    "serials": list,
    "progress": str,
}


def request_of(options: dict[str, Any]) -> GenerateRequest:
    """GenerateJobs' options -> a checked request (StationError INVALID otherwise)."""
    opts = dbusio.unpack(options)
    refuse_unknown(opts, _KINDS)
    for key, kind in _KINDS.items():
        if key in opts and type(opts[key]) is not kind:
            raise StationError(ErrorKind.INVALID, f"option {key}: wrong type", "See dbus-api.md.")
    upns = [str(u) for u in opts.get("upns", [])]
    serials = [str(s) for s in opts.get("serials", [""] * len(upns))]
    if len(serials) != len(upns):
        raise StationError(ErrorKind.INVALID, "upns and serials must be as long", "")
    req = GenerateRequest(
        count=int(opts.get("count", 0)),
        issuer=str(opts.get("issuer", DEFAULT_ISSUER)),
        algorithm=str(opts.get("algorithm", "sha1")).lower(),
        period=int(opts.get("period", 30)),
        assign=tuple(Assignment(u, s) for u, s in zip(upns, serials, strict=True)),
    )
    try:
        req.check()
    except GenerateProblem as exc:
        raise StationError(ErrorKind.INVALID, str(exc), "Nothing was queued.") from None
    return req


def progress_tag(options: dict[str, Any]) -> str:
    """The caller's tag for GenerateProgress ("" when it asked for none)."""
    tag = dbusio.unpack(options).get("progress", "")
    if tag and not (isinstance(tag, str) and _TAG.fullmatch(tag)):
        raise StationError(
            ErrorKind.INVALID,
            "option progress: give 1 to 64 letters, digits, '-' or '_'",
            "Nothing was queued.",
        )
    return str(tag)


class _Reporter:
    """``progress(n)`` of the queue, in its worker thread -> GenerateProgress on the loop
    thread (where events are published), at most every :data:`PROGRESS_INTERVAL_S`."""

    def __init__(
        self, station: Station, loop: asyncio.AbstractEventLoop, tag: str, total: int
    ) -> None:
        self.station = station
        self.loop = loop
        self.tag = tag
        self.total = total
        self._sent_at: float | None = None

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        due = self._sent_at is None or now - self._sent_at >= PROGRESS_INTERVAL_S
        if not due and done < self.total:
            return
        self._sent_at = now
        event = GenerateProgress(request=self.tag, done=done, total=self.total)
        self.loop.call_soon_threadsafe(self.station.publish, event)


async def generate_jobs(prov: Provisioner, options: dict[str, Any]) -> dict[str, object]:
    """Queue the batch (off the event loop), announce it, return its id and its jobs."""
    req = request_of(options)
    tag = progress_tag(options)
    batch = new_batch_id()
    loop = asyncio.get_running_loop()
    total = len(req.assign) or req.count
    report = _Reporter(prov.station, loop, tag, total) if tag else None
    try:
        intake = await loop.run_in_executor(
            None, lambda: prov.queue.add_generated(batch, new_jobs(req, batch), report)
        )
    except StoreUnavailable as exc:
        raise StationError(
            ErrorKind.FAILED, f"nothing queued: {exc}", "Try again when the database is back."
        ) from None
    except KeyProblem as exc:
        raise StationError(ErrorKind.FAILED, f"nothing queued: {exc}", "") from None
    prov.jobs_added()
    return {"batch": batch, "jobs": [j.as_dict() for j in intake.queued]}
