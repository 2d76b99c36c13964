"""A queue several stations share: their changes, the leases, the database's reachability.

Beside the Provisioner, on a shared database only. Another station's queue change
(NOTIFY, on the store's listener thread) becomes this station's QueueState event and a
new look at the tokens on its readers: at once when it comes alone, and when changes
come in a burst (30 stations burning, a big file queued elsewhere), one re-read and one
QueueState per ``coalescer.COALESCE_S`` for all of them, the last one after the last
change (``coalescer.Coalescer``), so the counts published are always the database's
latest. Every third of the lease it renews its own claims and settles the claims of
stations that stopped answering (their lease ran out): the job fails for a person to
check the token, and the token counts as possibly holding a seed everywhere. When the
database is unreachable, tokens are still read and measured; dropped files wait in the
drop folder's claim area and are taken when it is back (the file's hash is recorded with
its jobs in one transaction, so a file taken twice queues nothing twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from tokenstation.daemon.events import StoreReachability
from tokenstation.daemon.provisioning.coalescer import Coalescer
from tokenstation.daemon.storage.database import NameTaken, SchemaMismatch, StoreUnavailable
from tokenstation.daemon.storage.secretbox import KeyProblem

if TYPE_CHECKING:
    from tokenstation.daemon.provisioning.context import Follower

log = logging.getLogger(__name__)


class SharedQueue:
    """Keeps a station in step with the others on a shared queue."""

    def __init__(self, prov: Follower, loop: asyncio.AbstractEventLoop) -> None:
        self.prov = prov
        self.loop = loop
        self.reachable = True
        self.since = time.time()
        self.detail = ""
        #: False while a station started with the database away has not checked its
        #: schema and key there: no claims before (steps.claim_burn).
        self.verified = not prov.queue.started_away
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()  # a look at the database now, not at the next period
        self._changes = Coalescer(loop, prov.queue_changed_elsewhere)

    def start(self) -> None:
        """Listen for the other stations and keep the leases (loop thread)."""
        self.prov.queue.listen(self._changed_elsewhere, self._reachability)
        self._task = asyncio.ensure_future(self._keep_leases())

    async def stop(self) -> None:
        """Stop keeping leases and publishing the other stations' changes (the listener
        stops when the queue closes)."""
        self._changes.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def status(self) -> dict[str, object]:
        """For GetStatus: the shared database and whether it answers."""
        out: dict[str, object] = {
            "backend": "postgresql",
            "location": self.prov.queue.location,
            "reachable": self.reachable,
            "since": round(self.since, 3),
        }
        if not self.verified:
            out["checked"] = False  # started while it was away: schema and key not yet
        if not self.reachable:
            started = "" if self.verified else "this station started while it was away; "
            out["detail"] = (
                f"{started}the shared database is unreachable ({self.detail}); tokens are "
                "still read and measured, dropped files wait and are taken when it is back, "
                "no job is burned meanwhile"
            )
        return out

    # -- listener thread -------------------------------------------------------------------

    def _changed_elsewhere(self, what: str) -> None:
        self._changes.poke(what)

    def _reachability(self, reachable: bool) -> None:
        if reachable:  # reachable again once the name is held again: the keeper says so
            self.loop.call_soon_threadsafe(self._wake.set)
        else:
            self.loop.call_soon_threadsafe(self._set_reachable, False)

    # -- loop thread -------------------------------------------------------------------------

    def _set_reachable(self, reachable: bool, detail: str = "") -> None:
        if reachable == self.reachable:
            if not reachable and detail:
                self.detail = detail  # the latest reason, for status
            return
        self.reachable = reachable
        self.since = time.time()
        self.detail = detail or ("connection lost" if not reachable else "")
        if not reachable:
            self._wake.set()
        station = self.prov.station
        location = self.prov.queue.location
        if not reachable:
            log.warning("the shared database is unreachable: %s", self.detail)
            station.publish(
                StoreReachability(
                    reachable=False,
                    since=self.since,
                    location=location,
                    message=f"the shared database is unreachable ({self.detail}): no burns "
                    "until it is back; dropped files wait. Check the network and the "
                    "PostgreSQL server.",
                )
            )
            return
        log.info("the shared database is reachable again: catching up")
        station.publish(
            StoreReachability(
                reachable=True,
                since=self.since,
                location=location,
                message="the shared database is reachable again: waiting files are taken, "
                "burns go on",
            )
        )
        self.prov.catch_up()

    def _verify_schemas(self) -> None:
        self.prov.station.store.verify()
        self.prov.queue.verify()

    def lost(self, exc: StoreUnavailable) -> None:
        """A statement found the database unreachable (loop thread)."""
        self._set_reachable(False, str(exc))

    async def _keep_leases(self) -> None:
        """Renew this station's claims, hold its name, settle expired claims; also the
        health probe that says the database is back (woken when the listener is connected
        again): reachable only once the name is held again, as claims need it."""
        period = max(0.2, self.prov.queue.lease_s / 3)
        queue = self.prov.queue
        while True:
            self._wake.clear()
            try:
                # this station's burns keep their leases first, whatever comes next
                held = tuple(self.prov.claims)
                await self.loop.run_in_executor(None, queue.renew, held)
                if not self.verified:  # started away: the checks a start makes, now
                    await self.loop.run_in_executor(None, self._verify_schemas)
                # again after a loss: no claims (the store refuses them) until it is held
                await self.loop.run_in_executor(None, queue.hold_name)
                if not self.verified:
                    await self.loop.run_in_executor(None, queue.check_key)
                    self.verified = True
                    log.info("the shared database answers: schema and key checked")
                if not self.prov.recovered:
                    self.prov.recover()  # this station's claims from before its start
                expired = await self.loop.run_in_executor(None, queue.expire)
            except StoreUnavailable as exc:
                self.lost(exc)
            except NameTaken as exc:  # the server restarted and a same-named station came
                self.lost(StoreUnavailable(str(exc)))
            except (SchemaMismatch, KeyProblem) as exc:  # found late: no claims, ever
                if self.detail != str(exc):
                    log.error("%s; this station claims no job", exc)
                self.lost(
                    StoreUnavailable(
                        str(exc), "the shared database does not match this station (schema or key)"
                    )
                )
            except Exception:
                log.exception("keeping the queue's leases failed")
            else:
                if not self.reachable:
                    self._set_reachable(True)
                if expired:
                    self.prov.settle_interrupted(expired, "its station stopped answering")
                    self._changes.poke("expired")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake.wait(), period if self.reachable else min(period, 1.0)
                )
