"""GenerateJobs: a batch of burn jobs whose seeds the daemon makes (no seed in the reply)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from tokenstation.daemon.bus import dbusio
from tokenstation.daemon.bus.ops import refuse_unknown
from tokenstation.daemon.events import ErrorKind
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

_KINDS: dict[str, type] = {
    "count": int,
    "issuer": str,
    "algorithm": str,
    "period": int,
    "upns": list,
    "serials": list,
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


async def generate_jobs(prov: Provisioner, options: dict[str, Any]) -> dict[str, object]:
    """Queue the batch (off the event loop), announce it, return its id and its jobs."""
    req = request_of(options)
    batch = new_batch_id()
    try:
        intake = await asyncio.get_running_loop().run_in_executor(
            None, lambda: prov.queue.add_generated(batch, new_jobs(req, batch))
        )
    except StoreUnavailable as exc:
        raise StationError(
            ErrorKind.FAILED, f"nothing queued: {exc}", "Try again when the database is back."
        ) from None
    except KeyProblem as exc:
        raise StationError(ErrorKind.FAILED, f"nothing queued: {exc}", "") from None
    prov.jobs_added()
    return {"batch": batch, "jobs": [j.as_dict() for j in intake.queued]}
