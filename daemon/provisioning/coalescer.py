"""Queue changes told from any thread, acted on on the event loop in bursts.

A burst of queue changes (2,000 files taken after a restart, 30 stations burning, a big
file queued elsewhere) must not become 2,000 re-counts of the queue on the loop, each
waiting for the queue's lock behind the file threads: the loop would answer the bus
seconds late. One :class:`Coalescer` per source of changes turns the burst into one call
per :data:`COALESCE_S`, the last one after the last change.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

#: At most one re-read of the queue (and one QueueState) per this many seconds for each
#: source of changes (this station's own, the other stations'); a change after a quiet
#: spell is re-read at once.
COALESCE_S = 0.05


class Coalescer:
    """Calls ``act(what)`` on the loop for changes told from any thread (:meth:`poke`),
    at most once per ``window_s``: the first change after a quiet spell at once, the
    changes that come meanwhile together at the window's end (the trailing edge), so the
    call after the last change always starts after it. ``what`` names the changes
    ("claimed 12", or "3 changes, the last: claimed 14")."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        act: Callable[[str], None],
        window_s: float = COALESCE_S,
    ) -> None:
        self.loop = loop
        self.act = act
        self.window_s = window_s
        self._lock = threading.Lock()
        self._count = 0  # changes told since the last call began
        self._last = ""
        self._due = False  # a call is scheduled on the loop
        self._done_at = -float("inf")  # loop time of the last call
        self._timer: asyncio.TimerHandle | None = None
        self._stopped = False

    def poke(self, what: str) -> None:
        """A change (any thread)."""
        with self._lock:
            self._count += 1
            self._last = what
            if self._due:
                return
            self._due = True
        self.loop.call_soon_threadsafe(self._schedule)

    def stop(self) -> None:
        """No call from now on (loop thread): what is pending is dropped."""
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()

    def _schedule(self) -> None:
        wait = self._done_at + self.window_s - self.loop.time()
        if wait > 0:
            self._timer = self.loop.call_later(wait, self._fire)
        else:
            self._fire()

    def _fire(self) -> None:
        self._timer = None
        if self._stopped:
            return
        with self._lock:  # changes told from now on get a call of their own
            count, last = self._count, self._last
            self._count, self._due = 0, False
        self._done_at = self.loop.time()
        self.act(last if count == 1 else f"{count} changes, the last: {last}")
