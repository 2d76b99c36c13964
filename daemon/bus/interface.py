"""The D-Bus face of the station: interface org.tokenstation.TokenStation1 (version 1).

Documented in docs/dbus-api.md. Values cross the bus as ``a{sv}`` dictionaries of plain
values; no secret ever does. Errors are ``org.tokenstation.TokenStation1.Error.*``.

No ``from __future__ import annotations`` here: the D-Bus library reads the signature
strings in the annotations at class creation. Those strings are not Python names, so
mypy's and ruff's undefined-name checks are off for this file: keep logic in busops.py.
"""

import asyncio
import logging
from typing import Any

from tokenstation.daemon.bus.dbusio import (
    PropertyAccess,
    ServiceInterface,
    dbus_property,
    method,
    pack,
    signal,
)
from tokenstation.daemon.bus.generate import generate_jobs
from tokenstation.daemon.bus.names import API_VERSION, INTERFACE
from tokenstation.daemon.bus.ops import (
    answer,
    arg_text,
    burn_account_from_fd,
    dbus_error,
    edge,
    ingest_from_fd,
    job_states,
    page_args,
    properties,
    signal_of,
    status,
    sync_options,
)
from tokenstation.daemon.clocksync.sync import ClockSync
from tokenstation.daemon.events import ErrorKind, Event
from tokenstation.daemon.provisioning.delete import delete_profile
from tokenstation.daemon.provisioning.provisioner import Provisioner
from tokenstation.daemon.station import Station, StationError

#: How soon after an event PropertiesChanged says what changed (events within it share
#: one look at the properties).
PROPERTIES_SETTLE_S = 0.05

log = logging.getLogger(__name__)


class StationInterface(ServiceInterface):
    """org.tokenstation.TokenStation1 over the station and its features, handed in."""

    def __init__(self, station: Station, clock: ClockSync, provisioner: Provisioner) -> None:
        super().__init__(INTERFACE)
        self.station = station
        self.clock = clock
        self.provisioner = provisioner
        self.system_bus = station.cfg.bus == "system"
        self._properties: dict[str, Any] = {}
        self._properties_due: asyncio.TimerHandle | None = None
        station.subscribe(self._on_event)

    # -- events -> signals ---------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        """The event's signal at once, then (within :data:`PROPERTIES_SETTLE_S`)
        PropertiesChanged for what changed: every property is state the daemon holds (the
        queue length is counted at each queue change), so this asks no database and
        follows placements during an outage too. A burst of events (a batch of burns
        into a Molto2's 100 profiles) shares one look at the properties instead of
        packing every profile once per event."""
        name, payload = signal_of(event, self.system_bus)
        getattr(self, name)(payload)
        if self._properties_due is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a test calling in): at once
            self._emit_changed()
            return
        self._properties_due = loop.call_later(PROPERTIES_SETTLE_S, self._emit_changed)

    def _emit_changed(self) -> None:
        self._properties_due = None
        now = properties(self.station, self.provisioner)
        changed = {k: v for k, v in now.items() if self._properties.get(k) != v}
        self._properties = now
        if changed:
            self.emit_properties_changed(changed)

    # -- properties ----------------------------------------------------------------------

    @dbus_property(access=PropertyAccess.READ)
    @edge
    def Version(self) -> "u":
        """Interface version (1)."""
        return API_VERSION

    @dbus_property(access=PropertyAccess.READ)
    @edge
    def Readers(self) -> "as":
        """The readers being watched."""
        return sorted(self.station.readers)

    @dbus_property(access=PropertyAccess.READ)
    @edge
    def Present(self) -> "aa{sv}":
        """The cards on the readers now."""
        return [pack(p) for p in self.station.present()]

    @dbus_property(access=PropertyAccess.READ)
    @edge
    def QueueLength(self) -> "u":
        """Burn jobs waiting for a token (as last counted; see GetStatus's store)."""
        return self.provisioner.queue_length()

    @dbus_property(access=PropertyAccess.READ)
    @edge
    def Paused(self) -> "b":
        """True while the burn queue is paused."""
        return self.provisioner.paused

    # -- methods -------------------------------------------------------------------------

    @method()
    @edge
    def GetStatus(self) -> "a{sv}":
        """The station at a glance."""
        return pack(status(self.station, self.provisioner))

    @method()
    @edge
    def ListPresent(self) -> "aa{sv}":
        """The cards on the readers now, with drift and the sync decision."""
        return [pack(p) for p in self.station.present()]

    @method()
    @edge
    def ListTokens(self) -> "aa{sv}":
        """Every token in the registry with its drift rate and forecast."""
        return [pack(t) for t in self.station.registry()]

    @method()
    @edge
    def GetToken(self, serial: "s") -> "a{sv}":
        """One registry entry with its drift history and operations."""
        serial = arg_text("serial", serial)
        found = self.station.registry(serial, history=True)
        if not found:
            raise dbus_error(
                StationError(ErrorKind.NOT_PRESENT, f"token {serial} is not in the registry")
            )
        return pack(found[0])

    @method()
    @edge
    async def SyncToken(self, serial: "s", options: "a{sv}") -> "a{sv}":
        """Set a presented token's clock (serial "" = the only token present)."""
        serial = arg_text("serial", serial)

        async def sync() -> Event:
            return await self.clock.sync(serial, **sync_options(options))

        return await answer("SyncToken", sync)

    @method()
    @edge
    def Pause(self) -> None:
        """Pause the burn queue."""
        self.provisioner.set_paused(True)

    @method()
    @edge
    def Resume(self) -> None:
        """Resume the burn queue (and offer waiting jobs to the tokens present)."""
        self.provisioner.set_paused(False)

    @method()
    @edge
    def ListJobs(self, offset: "u", limit: "u", states: "as") -> "a{sv}":
        """A page of jobs in ``states`` (all when empty), oldest first; no secrets."""
        first, size = page_args(offset, limit)
        wanted = job_states(states)
        queue = self.provisioner.queue
        jobs = [j.as_dict() for j in queue.jobs(wanted, offset=first, limit=size)]
        return pack({"jobs": jobs, "total": queue.total(wanted), "offset": first, "limit": size})

    @method()
    @edge
    def RemoveJob(self, job_id: "u") -> "a{sv}":
        """Remove a queued or failed job; its secret is erased."""
        return pack(self.provisioner.remove(job_id).as_dict())

    @method()
    @edge
    def RetryJob(self, job_id: "u") -> "a{sv}":
        """Put a failed job back in the queue."""
        return pack(self.provisioner.retry(job_id).as_dict())

    @method()
    @edge
    def SkipJob(self, job_id: "u", serial: "s") -> None:
        """Do not offer this job to this token while it stays on the reader."""
        serial = arg_text("serial", serial)
        self.provisioner.skip(job_id, serial)

    @method()
    @edge
    async def IngestFile(self, file: "h", name: "s") -> "a{sv}":
        """Read a file the caller opened (its name gives the type), queue its jobs."""
        return await answer("IngestFile", lambda: ingest_from_fd(self.provisioner, file, name))

    @method()
    @edge
    async def GenerateJobs(self, options: "a{sv}") -> "a{sv}":
        """Queue a batch of jobs whose seeds the daemon makes; returns the batch and jobs."""
        return await answer("GenerateJobs", lambda: generate_jobs(self.provisioner, options))

    @method()
    @edge
    async def BurnJob(self, job_id: "u", serial: "s") -> "a{sv}":
        """Burn a queued job onto a presented token (the attended "Burn" action)."""
        serial = arg_text("serial", serial)
        return await answer("BurnJob", lambda: self.provisioner.burn(job_id, serial))

    @method()
    @edge
    async def DeleteProfile(self, serial: "s", profile: "u") -> "a{sv}":
        """Delete one Molto2 profile's seed (title kept); the caller asked a person first."""
        serial = arg_text("serial", serial)
        return await answer("DeleteProfile", lambda: delete_profile(self.station, serial, profile))

    @method()
    @edge
    async def BurnAccount(self, file: "h", name: "s", serial: "s", options: "a{sv}") -> "a{sv}":
        """Burn the one account of a file the caller opened into a Molto2 profile."""

        async def burn() -> dict[str, object]:
            return await burn_account_from_fd(self.provisioner, file, name, serial, options)

        return await answer("BurnAccount", burn)

    # -- signals -------------------------------------------------------------------------

    @signal()
    def TokenPresented(self, info: "a{sv}") -> "a{sv}":
        """A token was placed: serial, model and a first whole-second drift."""
        return info

    @signal()
    def TokenMeasured(self, info: "a{sv}") -> "a{sv}":
        """Precise drift and the sync decision (verdict, sync_offered, reason)."""
        return info

    @signal()
    def DriftDetected(self, info: "a{sv}") -> "a{sv}":
        """Measured beyond the threshold."""
        return info

    @signal()
    def TokenRemoved(self, info: "a{sv}") -> "a{sv}":
        """A token left its reader."""
        return info

    @signal()
    def CardIgnored(self, info: "a{sv}") -> "a{sv}":
        """A card that is not a programmable token (announced once per minute)."""
        return info

    @signal()
    def SyncDone(self, info: "a{sv}") -> "a{sv}":
        """A clock sync succeeded: drift before and after."""
        return info

    @signal()
    def SyncFailed(self, info: "a{sv}") -> "a{sv}":
        """A clock sync was refused or failed: message and next step."""
        return info

    @signal()
    def ReaderAdded(self, info: "a{sv}") -> "a{sv}":
        """A reader appeared."""
        return info

    @signal()
    def ReaderRemoved(self, info: "a{sv}") -> "a{sv}":
        """A reader went away."""
        return info

    @signal()
    def Error(self, info: "a{sv}") -> "a{sv}":
        """Something went wrong: kind, message, next_step."""
        return info

    @signal()
    def ServiceBack(self, info: "a{sv}") -> "a{sv}":
        """The PC/SC service is back after an Error of kind service-lost."""
        return info

    @signal()
    def QueueState(self, info: "a{sv}") -> "a{sv}":
        """The burn queue changed: paused, length."""
        return info

    @signal()
    def FileTaken(self, info: "a{sv}") -> "a{sv}":
        """A dropped file was judged: kind, verdict, reason, queued jobs, duplicates."""
        return info

    @signal()
    def BurnOffered(self, info: "a{sv}") -> "a{sv}":
        """Attended mode: a job waits for a yes (BurnJob) or a no (SkipJob)."""
        return info

    @signal()
    def BurnDone(self, info: "a{sv}") -> "a{sv}":
        """A seed was burned: serial, job, the code to expect after a power cycle."""
        return info

    @signal()
    def BurnFailed(self, info: "a{sv}") -> "a{sv}":
        """A burn failed: outcome (requeued or failed), message, next step."""
        return info

    @signal()
    def ProfilesSynced(self, info: "a{sv}") -> "a{sv}":
        """A Molto2's seeded profiles had their clocks set: drift before and after each."""
        return info

    @signal()
    def StoreReachability(self, info: "a{sv}") -> "a{sv}":
        """The shared database went away or came back: reachable, since, message."""
        return info

    @signal()
    def ProfileDeleted(self, info: "a{sv}") -> "a{sv}":
        """A Molto2 profile's seed was deleted: the profile, and the presence as it is now."""
        return info

    @signal()
    def TokenUpdated(self, info: "a{sv}") -> "a{sv}":
        """After a write to a token (done or failed): its presence as it is now."""
        return info

    @signal()
    def GenerateProgress(self, info: "a{sv}") -> "a{sv}":
        """How far a GenerateJobs call has got: its caller's tag, done, total (counts only)."""
        return info
