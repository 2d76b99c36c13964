"""Talking to a running daemon over D-Bus: the CLI's and the tray's side of bus.py.

Signals arrive either raw (name and plain dict, for printing them) or decoded into the
daemon's own typed events (``events.py``, :meth:`StationClient.subscribe_events`).
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from tokenstation.daemon.bus import address as busaddress
from tokenstation.daemon.bus import dbusio
from tokenstation.daemon.bus.names import BUS_NAME, ERROR_PREFIX, INTERFACE, KINDS, OBJECT_PATH
from tokenstation.daemon.events import DecodeError, ErrorKind, Event, from_signal
from tokenstation.daemon.token.problem import Problem, ProblemKind

SignalHandler = Callable[[str, dict[str, Any]], None]
EventHandler = Callable[[Event], None]

log = logging.getLogger(__name__)

#: Jobs asked for per ListJobs call when paging through (the daemon's largest page).
PAGE = 1000


class DaemonNotRunning(Problem):
    """No daemon to talk to: nobody owns its name on the bus (``next_step`` says what to do)."""

    kind = ProblemKind.UNAVAILABLE

    def __init__(self, message: str, next_step: str = "") -> None:
        super().__init__(message, next_step)


class BusUnreachable(DaemonNotRunning):
    """The bus itself cannot be reached (no session bus in this shell, no socket, ...)."""


class DaemonError(Problem):
    """The daemon answered with an error: ``kind`` as in StationError, ``text`` for people,
    ``next_step`` what to do ("" when the reply named none)."""

    def __init__(self, kind: ErrorKind, text: str, next_step: str = "") -> None:
        super().__init__(text, next_step, kind=kind)

    @property
    def text(self) -> str:
        """The message (the name the daemon's replies have always had here)."""
        return self.message


def _denied(bus: str, member: str) -> tuple[str, str]:
    """The bus policy refused a call: what it means, and what to do."""
    if bus == "system":
        return (
            f"the system bus refused this user's call to {member}: on a station only members "
            "of the tokenstation group may change anything",
            "Ask an administrator to run `sudo adduser $USER tokenstation`, then log in again.",
        )
    return f"the {bus} bus refused this user's call to {member} (its policy denies it)", ""


class StationClient:
    """Method calls and signal subscription on org.tokenstation.TokenStation1."""

    def __init__(self, bus: Any) -> None:
        self.bus = bus
        self.bus_kind = "session"
        self._handlers: list[SignalHandler] = []
        self._matching = False

    @classmethod
    async def connect(
        cls, bus: str = "session", address: str | None = None, *, require: bool = True
    ) -> StationClient:
        """Connect; with ``require``, raise DaemonNotRunning when no daemon owns the name."""
        if address is None and busaddress.missing(bus):
            raise BusUnreachable(busaddress.unreachable(bus), busaddress.reach_advice(bus))
        try:
            conn = await dbusio.connect(bus, address, unix_fds={})
        except Exception as exc:
            raise BusUnreachable(
                busaddress.unreachable(bus, address, exc), busaddress.reach_advice(bus)
            ) from None
        client = cls(conn)
        client.bus_kind = bus
        if require and not await dbusio.name_has_owner(conn, BUS_NAME):
            await client.close()
            raise DaemonNotRunning(busaddress.not_running(bus), busaddress.start_advice(bus))
        return client

    async def close(self) -> None:
        """Disconnect."""
        await dbusio.disconnect(self.bus)

    async def running(self) -> bool:
        """True while a daemon owns the name."""
        return bool(await dbusio.name_has_owner(self.bus, BUS_NAME))

    async def _call(
        self,
        member: str,
        signature: str = "",
        body: list[Any] | None = None,
        unix_fds: Sequence[int] = (),
    ) -> Any:
        try:
            reply = await dbusio.call(
                self.bus,
                BUS_NAME,
                OBJECT_PATH,
                INTERFACE,
                member,
                signature,
                body or [],
                unix_fds=unix_fds,
            )
        except dbusio.DBusError as exc:
            name = str(getattr(exc, "type", ""))
            kind = KINDS.get(name.removeprefix(ERROR_PREFIX), ErrorKind.FAILED)
            if name.endswith("AccessDenied"):
                raise DaemonError(ErrorKind.DENIED, *_denied(self.bus_kind, member)) from None
            if name.endswith(("ServiceUnknown", "NameHasNoOwner")):
                raise DaemonNotRunning(
                    busaddress.not_running(self.bus_kind), busaddress.start_advice(self.bus_kind)
                ) from None
            raise DaemonError(kind, *dbusio.error_parts(exc)) from None
        return dbusio.unpack(reply[0]) if reply else None

    async def status(self) -> dict[str, Any]:
        """GetStatus."""
        result: dict[str, Any] = await self._call("GetStatus")
        return result

    async def present(self) -> list[dict[str, Any]]:
        """ListPresent."""
        result: list[dict[str, Any]] = await self._call("ListPresent")
        return result

    async def tokens(self) -> list[dict[str, Any]]:
        """ListTokens."""
        result: list[dict[str, Any]] = await self._call("ListTokens")
        return result

    async def token(self, serial: str) -> dict[str, Any]:
        """GetToken (with history)."""
        result: dict[str, Any] = await self._call("GetToken", "s", [serial])
        return result

    async def sync(self, serial: str = "", **options: Any) -> dict[str, Any]:
        """SyncToken; options as in docs/dbus-api.md."""
        result: dict[str, Any] = await self._call(
            "SyncToken", "sa{sv}", [serial, dbusio.pack(options)]
        )
        return result

    async def jobs_page(
        self, offset: int = 0, limit: int = 0, states: Sequence[str] = ()
    ) -> dict[str, Any]:
        """ListJobs: one page (jobs, total, offset, limit); limit 0 = the daemon's default."""
        result: dict[str, Any] = await self._call("ListJobs", "uuas", [offset, limit, list(states)])
        return result

    async def iter_jobs(self, states: Sequence[str] = ()) -> AsyncIterator[dict[str, Any]]:
        """Every job in ``states`` (all when empty), page by page, oldest first."""
        offset = 0
        while True:
            page = await self.jobs_page(offset, PAGE, states)
            jobs: list[dict[str, Any]] = page.get("jobs", [])
            for job in jobs:
                yield job
            offset += len(jobs)
            if not jobs or offset >= int(page.get("total", 0)):
                return

    async def jobs(self, states: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Every job in ``states`` (all when empty), read page by page."""
        return [job async for job in self.iter_jobs(states)]

    async def remove_job(self, job_id: int) -> dict[str, Any]:
        """RemoveJob."""
        result: dict[str, Any] = await self._call("RemoveJob", "u", [job_id])
        return result

    async def retry_job(self, job_id: int) -> dict[str, Any]:
        """RetryJob."""
        result: dict[str, Any] = await self._call("RetryJob", "u", [job_id])
        return result

    async def skip_job(self, job_id: int, serial: str) -> None:
        """SkipJob."""
        await self._call("SkipJob", "us", [job_id, serial])

    async def burn_job(self, job_id: int, serial: str) -> dict[str, Any]:
        """BurnJob."""
        result: dict[str, Any] = await self._call("BurnJob", "us", [job_id, serial])
        return result

    async def delete_profile(self, serial: str, profile: int) -> dict[str, Any]:
        """DeleteProfile (ask a person first: the seed is gone for good)."""
        result: dict[str, Any] = await self._call("DeleteProfile", "su", [serial, profile])
        return result

    async def burn_account(self, fd: int, name: str, serial: str, **options: Any) -> dict[str, Any]:
        """BurnAccount: the caller's open file ``fd`` (kept open here; the caller closes
        it) with one account, burned into options' profile (absent: next free) of a Molto2."""
        result: dict[str, Any] = await self._call(
            "BurnAccount", "hssa{sv}", [0, name, serial, dbusio.pack(options)], unix_fds=[fd]
        )
        return result

    async def generate(
        self, progress: Callable[[int, int], None] | None = None, **options: Any
    ) -> dict[str, Any]:
        """GenerateJobs: count, issuer, algorithm, period, or upns (+ serials).

        With ``progress``, ``progress(done, total)`` for each GenerateProgress signal of
        this call while the daemon queues the batch (told apart by a tag made here).
        """
        mine: SignalHandler | None = None
        if progress is not None:
            tag = secrets.token_hex(8)
            options = {**options, "progress": tag}
            report = progress

            def on_progress(name: str, payload: dict[str, Any]) -> None:
                if name != "GenerateProgress" or payload.get("request") != tag:
                    return
                try:
                    report(int(payload["done"]), int(payload["total"]))
                except (KeyError, TypeError, ValueError):  # another version's payload
                    log.debug("ignored a GenerateProgress signal that does not decode")

            mine = on_progress
            await self.subscribe(mine)  # the match is in place before the call
        try:
            result: dict[str, Any] = await self._call(
                "GenerateJobs", "a{sv}", [dbusio.pack(options)]
            )
        finally:
            if mine is not None:
                self._handlers.remove(mine)
        return result

    async def ingest(self, path: str) -> dict[str, Any]:
        """IngestFile: the file is opened here, by the caller, and its descriptor passed."""
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            result: dict[str, Any] = await self._call(
                "IngestFile", "hs", [0, os.path.basename(path)], unix_fds=[fd]
            )
        finally:
            os.close(fd)
        return result

    async def pause(self, paused: bool = True) -> None:
        """Pause (or resume) the burn queue."""
        await self._call("Pause" if paused else "Resume")

    async def subscribe(self, handler: SignalHandler) -> None:
        """Call ``handler(signal_name, payload)`` for every station signal."""
        self._handlers.append(handler)
        if self._matching:
            return
        self._matching = True
        await dbusio.add_match(
            self.bus, f"type='signal',interface='{INTERFACE}',path='{OBJECT_PATH}'"
        )

        def on_message(msg: Any) -> None:
            if msg.message_type != dbusio.MessageType.SIGNAL or msg.interface != INTERFACE:
                return
            payload = dbusio.unpack(msg.body[0]) if msg.body else {}
            for h in list(self._handlers):
                h(msg.member, payload)

        self.bus.add_message_handler(on_message)

    async def subscribe_events(self, handler: EventHandler) -> None:
        """Call ``handler(event)`` for every station signal, decoded into its event type.

        A signal this client does not know, or one that does not decode (a daemon of
        another version), is logged and skipped.
        """

        def decode(name: str, payload: dict[str, Any]) -> None:
            try:
                event = from_signal(name, payload)
            except DecodeError as exc:
                log.warning("ignored a %s signal that does not decode: %s", name, exc)
                return
            if event is not None:
                handler(event)

        await self.subscribe(decode)
