"""Exported seeds erased by time: ``[handover] keep_days`` after their export, hourly.

A seed never exported (or pushed) is never erased here: only the administrator's
`tokenstation export --erase`, or the hand-over itself, ends it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from tokenstation.daemon.provisioning.queue import JobQueue
from tokenstation.daemon.storage.database import StoreUnavailable

log = logging.getLogger(__name__)

DAY_S = 86400.0
EVERY_S = 3600.0


def erase_expired(queue: JobQueue, keep_days: int, now: float | None = None) -> int:
    """Erase the seeds exported more than ``keep_days`` ago; how many."""
    before = (now if now is not None else time.time()) - keep_days * DAY_S
    n = queue.erase_exported(exported_before=before)
    if n:
        log.info("erased %d exported seed(s) kept over %d day(s)", n, keep_days)
    return n


class Keeper:
    """Runs :func:`erase_expired` at start and every hour on the event loop."""

    def __init__(self, queue: JobQueue, keep_days: int, loop: asyncio.AbstractEventLoop) -> None:
        self.queue = queue
        self.keep_days = keep_days
        self.loop = loop
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Erase now (off the loop), then again every hour."""
        self.loop.run_in_executor(None, self._pass)
        self._timer = self.loop.call_later(EVERY_S, self.start)

    def stop(self) -> None:
        """No more passes."""
        if self._timer is not None:
            self._timer.cancel()

    def _pass(self) -> None:
        try:
            erase_expired(self.queue, self.keep_days)
        except StoreUnavailable as exc:  # the next pass tries again
            log.warning("exported seeds not erased yet: %s", exc)
        except Exception:
            log.exception("erasing exported seeds failed")
