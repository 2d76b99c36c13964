"""Clock sync, a feature beside the Provisioner: set a presented token's clock where safe.

Owns no state of its own beyond the auto-sync tasks it runs: it reads the station's
presences, decides from the policy (``policy.py``) what is safe, and writes through the
station's one write path (:meth:`Station.write`), which records the operation and
publishes SyncDone or SyncFailed. Auto-sync listens for TokenMeasured events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from tokenstation.daemon.cards import CardOperation, Presence, StationError
from tokenstation.daemon.clocksync.policy import KnownSettings
from tokenstation.daemon.events import Event, Origin, ProfilesSynced, SyncDone, TokenMeasured
from tokenstation.daemon.families.table import family_of
from tokenstation.daemon.station import Station
from tokenstation.daemon.token.settings import TokenSettings

log = logging.getLogger(__name__)


class ClockSync:
    """Manual and automatic clock syncs of presented tokens."""

    def __init__(self, station: Station) -> None:
        self.station = station
        self._tasks: set[asyncio.Task[None]] = set()
        station.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, TokenMeasured) and event.auto_sync:
            p = self.station.readers.get(event.reader)
            if p is not None and p.decision is not None:
                self._spawn(self._auto(p, p.decision.settings))

    def _write_for(
        self,
        p: Presence,
        known: KnownSettings | None,
        origin: Origin,
        *,
        confirm: bool = False,
        wait: bool,
    ) -> CardOperation[Any]:
        """The token's family's clock write (a Molto2's: time only, its seeded profiles)."""
        return family_of(p).sync_write(self.station, known, origin, confirm=confirm, wait=wait)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _auto(self, p: Presence, known: KnownSettings | None) -> None:
        try:
            await self.station.write(p, self._write_for(p, known, Origin.AUTO, wait=True))
        except StationError as exc:
            log.warning("auto-sync of %s did not happen: %s", p.serial, exc.message)

    async def sync(
        self,
        serial: str = "",
        *,
        reader: str = "",
        confirm_untrusted_clock: bool = False,
        settings: TokenSettings | None = None,
        origin: Origin = Origin.MANUAL,
    ) -> SyncDone | ProfilesSynced:
        """Set a presented token's clock, where that is safe (a Molto2: every profile
        holding a seed, settings read from each). Raises :class:`StationError`."""
        p = self.station.find(serial, reader)
        known = family_of(p).sync_settings(self.station, p, settings)
        write = self._write_for(p, known, origin, confirm=confirm_untrusted_clock, wait=False)
        done = await self.station.write(p, write)
        assert isinstance(done, SyncDone | ProfilesSynced)
        return done
