"""Straight to privacyIDEA: each generated seed enrolled after its burn, then erased here.

A peer of the burner: the provisioner tells it a burn happened (one call); it pushes off
the event loop. A server away or refusing leaves the seed sealed (`handover: pending`,
the reason on the job and in `status`) and is tried again with back-off: 30 s, doubling,
at most an hour. At start every pending seed is tried.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from tokenstation.daemon.config import PrivacyIdeaConfig
from tokenstation.daemon.credentials import CredentialProblem, read_private
from tokenstation.daemon.handover.held import held_records
from tokenstation.daemon.handover.privacyidea import PrivacyIdeaClient, PushProblem
from tokenstation.daemon.provisioning.queue import JobQueue, SealBroken
from tokenstation.daemon.storage.database import StoreUnavailable

log = logging.getLogger(__name__)

FIRST_RETRY_S = 30.0
LAST_RETRY_S = 3600.0


class Pusher:
    """Pushes pending generated seeds to privacyIDEA (inactive without a URL)."""

    def __init__(
        self, queue: JobQueue, cfg: PrivacyIdeaConfig, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.queue = queue
        self.cfg = cfg
        self.loop = loop
        self.problem = ""
        self.pushed = 0
        self._delay = FIRST_RETRY_S
        self._timer: asyncio.TimerHandle | None = None
        self._running = threading.Lock()

    @property
    def active(self) -> bool:
        """True when [handover.privacyidea] names a server."""
        return bool(self.cfg.url)

    def start(self) -> None:
        """Try every pending seed now (loop thread)."""
        self.burned()

    def stop(self) -> None:
        """No more retries."""
        if self._timer is not None:
            self._timer.cancel()

    def burned(self) -> None:
        """A burn happened (any thread): push what is pending, off the loop."""
        if self.active:
            self.loop.call_soon_threadsafe(self._schedule)

    def status(self) -> dict[str, object]:
        """For GetStatus: where, how many pushed since start, the last problem."""
        return {"url": self.cfg.url, "pushed": self.pushed, "problem": self.problem}

    def _schedule(self) -> None:
        self.loop.run_in_executor(None, self._pass)

    def _pass(self) -> None:
        if not self._running.acquire(blocking=False):
            return  # a pass is on its way; a burn during it is picked up by a retry
        try:
            self._push_pending()
        except Exception:
            log.exception("the privacyIDEA push failed unexpectedly")
            self._failed("internal error; see the daemon log")
        finally:
            self._running.release()

    def _push_pending(self) -> None:
        try:
            token = read_private(self.cfg.api_token_file, "API token").strip()  # type: ignore[arg-type]
        except CredentialProblem as exc:
            self._failed(str(exc))
            return
        client = PrivacyIdeaClient(
            self.cfg.url, token, realm=self.cfg.realm, ca_file=self.cfg.ca_file
        )
        try:
            pending = held_records(self.queue, states=("pending",))
        except (StoreUnavailable, SealBroken) as exc:
            self._failed(str(exc))
            return
        for job_id, record in pending:
            try:
                client.push(record)
            except PushProblem as exc:
                self.queue.handover_problem(job_id, f"not pushed yet: {exc}")
                self._failed(str(exc))
                return
            self.queue.mark_pushed(job_id)
            self.pushed += 1
            log.info(
                "job %d pushed to %s as %s; its seed is erased here",
                job_id,
                self.cfg.url,
                record.serial,
            )
        self.problem = ""
        self._delay = FIRST_RETRY_S

    def _failed(self, reason: str) -> None:
        """Keep the reason; try again later (doubling, at most an hour)."""
        again = time.strftime("%H:%M:%S", time.localtime(time.time() + self._delay))
        self.problem = f"{reason} (tried again at {again})"
        log.warning("privacyIDEA push: %s", self.problem)
        delay, self._delay = self._delay, min(self._delay * 2, LAST_RETRY_S)
        self.loop.call_soon_threadsafe(self._retry_in, delay)

    def _retry_in(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(delay, self._schedule)
