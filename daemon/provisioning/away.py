"""Burns the shared database could not record: kept here, durably, until it is back.

A seed written onto a token just as the shared database went away is still a burn: the
writing station reports it (BurnDone, with a note saying so), keeps what is left to
record in a file of its own (``away-burns.json`` beside the provisioning log, 0600,
replaced atomically and fsynced at every change, so a crash loses no step) and
records it when the database answers again: the registry (the token provisioned, its
settings), the operation, the job burned (its seed erased) with a reason saying what
happened, and the shared provisioning log's row. No secret is ever in the file.

Until then the job stays claimed by this station (its lease renewed once the database
answers, before any station could expire it); if another station expired it
meanwhile ("stopped answering"), settling it here turns it into the burn it was.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: What a burn's outcome says when the shared database could not take its record.
NOTE = "burned; the shared database was away, recorded here and sent when it is back"

#: The steps of a burn's record, in the order they are settled.
STEPS = ("registry", "operation", "job", "shared_log")


@dataclass
class AwayBurn:
    """One burn waiting for the shared database: what is left to record (no secret)."""

    job_id: int
    serial: str
    at: float
    label: str
    fingerprint: str
    station: str
    detail: str  # the operation's detail ("station; Acme:alice")
    settings: dict[str, Any] | None  # hmac, period, display_timeout (None: a Molto2's)
    log_row: dict[str, str]
    steps: list[str] = field(default_factory=lambda: list(STEPS))
    model: str = ""


class AwayBurns:
    """The file of burns waiting for the shared database (any thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._burns: dict[int, AwayBurn] = {}
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raw = []
        except (OSError, ValueError) as exc:  # never lose it: left for a person to read
            log.error("%s cannot be read (%s); it is left as it is", path, exc)
            raw = []
        for item in raw:
            with contextlib.suppress(TypeError, KeyError, ValueError):
                burn = AwayBurn(**item)
                self._burns[burn.job_id] = burn

    def __contains__(self, job_id: int) -> bool:
        with self._lock:
            return job_id in self._burns

    def pending(self) -> list[AwayBurn]:
        """The burns still to record, oldest first."""
        with self._lock:
            return sorted(self._burns.values(), key=lambda b: b.at)

    def keep(self, burn: AwayBurn) -> None:
        """Keep ``burn`` (durable when this returns)."""
        with self._lock:
            self._burns[burn.job_id] = burn
            self._save()

    def done(self, job_id: int, step: str) -> None:
        """One step of a burn's record is in the database (durable when this returns)."""
        with self._lock:
            burn = self._burns.get(job_id)
            if burn is None:
                return
            burn.steps = [s for s in burn.steps if s != step]
            if not burn.steps:
                del self._burns[job_id]
            self._save()

    def _save(self) -> None:
        if not self._burns and not self.path.exists():
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        data = json.dumps([asdict(b) for b in self._burns.values()], indent=1)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
