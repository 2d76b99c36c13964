"""What the burn steps, the burn writes, the Molto2's burn and the shared queue's
follower see of the provisioner: small protocols, so none of them imports it (the
provisioner imports them)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from tokenstation.daemon.config import Config
from tokenstation.daemon.events import FileTaken
from tokenstation.daemon.faults import CrashPoint
from tokenstation.daemon.handover.pusher import Pusher
from tokenstation.daemon.provisioning.away import AwayBurns
from tokenstation.daemon.provisioning.queue import Job, JobQueue
from tokenstation.daemon.station import Presence, Station
from tokenstation.daemon.storage.database import StoreUnavailable


class SharedState(Protocol):
    """The shared queue's follower as a claim sees it."""

    @property
    def verified(self) -> bool:
        """The shared database's schema and key were checked since start."""
        ...


class Ingesting(Protocol):
    """The file intake as a burn that brings its own account sees it."""

    async def ingest(self, fd: int, name: str) -> FileTaken:
        """Judge and queue the file behind ``fd``; refusals raise."""
        ...


class BurnContext(Protocol):
    """The provisioner as a burn sees it: the queue, this station's claims, the
    bookkeeping kept while the shared database is away, and where to log."""

    station: Station
    queue: JobQueue
    cfg: Config
    paused: bool
    recovered: bool
    claims: set[int]
    held: set[str]
    away: AwayBurns
    pusher: Pusher
    log_path: Path
    crash_point: CrashPoint

    @property
    def intake(self) -> Ingesting:
        """Files in, jobs out."""
        ...

    @property
    def shared(self) -> SharedState | None:
        """The shared queue's follower (None: a local queue)."""
        ...

    def lost(self, exc: StoreUnavailable) -> None:
        """A statement found the shared database away."""

    def log_row(self, job: Job, p: Presence) -> dict[str, object]:
        """The provisioning-log row of a burned job (no secret)."""
        ...

    def burned_before(self, serial: str) -> str:
        """What records ``serial`` as burned ("" if nothing)."""
        ...

    def offer(self, reader: str) -> None:
        """Consider ``reader``'s token for the next job soon."""

    def queue_changed(self, *, offer: bool = True) -> None:
        """Publish the queue's state; with ``offer``, offer jobs to tokens."""

    async def burn_or_offer(
        self,
        p: Presence,
        job: Job,
        *,
        automatic: bool,
        question: str,
        warning: str = "",
        profile: int | None = None,
    ) -> None:
        """Burn ``job`` onto ``p`` now (station mode), or offer it."""


class Follower(Protocol):
    """The provisioner as the shared queue's follower sees it."""

    station: Station
    queue: JobQueue
    recovered: bool
    claims: set[int]

    def recover(self) -> list[Job]:
        """Settle burns a stop interrupted."""
        ...

    def settle_interrupted(self, stuck: list[Job], why: str) -> None:
        """Fail interrupted burns for a person; mark their tokens uncertain."""

    def catch_up(self) -> None:
        """The shared database is back: take the files that waited, offer."""

    def queue_changed_elsewhere(self, what: str) -> None:
        """Another station changed the shared queue: publish, offer again."""
