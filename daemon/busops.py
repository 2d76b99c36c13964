"""The logic behind the D-Bus methods, kept out of bus.py so linters check all of it.

Errors become ``org.tokenstation.TokenStation1.Error.*`` with text for people; options
dictionaries are checked here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from . import dbusio
from .busnames import error_name
from .dbusio import DBusError
from .events import SIGNALS, ErrorKind, Event, to_wire
from .provisioning import Provisioner
from .station import Station, StationError
from .token.errors import InvalidInput
from .token.settings import HmacAlgorithm, TokenSettings

log = logging.getLogger("tokenstation.daemon.bus")

_SYNC_OPTIONS = {"reader", "confirm_untrusted_clock", "algorithm", "period", "display_timeout"}


def dbus_error(exc: StationError) -> Exception:
    """A StationError as the D-Bus error the client sees (message, then next step)."""
    text = exc.message + (f". {exc.next_step}" if exc.next_step else "")
    result: Exception = DBusError(error_name(exc.kind), text)
    return result


def signal_of(event: Event) -> tuple[str, dict[str, Any]]:
    """An event -> its signal's name and ``a{sv}`` payload (the bus edge; one table)."""
    return SIGNALS[type(event)], dbusio.pack(to_wire(event))


def properties(station: Station, provisioner: Provisioner) -> dict[str, Any]:
    """The interface's changing properties, D-Bus-ready (compared to emit what changed)."""
    return {
        "Readers": sorted(station.readers),
        "Present": [dbusio.pack(p) for p in station.present()],
        "Paused": provisioner.paused,
        "QueueLength": provisioner.queue_length(),
    }


def status(station: Station, provisioner: Provisioner) -> dict[str, object]:
    """GetStatus: the station's part and the provisioner's."""
    return {**station.status(), **provisioner.status()}


async def answer(name: str, call: Callable[[], Awaitable[Event | dict[str, object]]]) -> Any:
    """Await a station call for a D-Bus method: its result packed, its errors as D-Bus errors.

    An unexpected exception is logged and answered as "internal error": no traceback (or
    anything else from the daemon's memory) crosses the bus.
    """
    try:
        result = await call()
    except StationError as exc:
        raise dbus_error(exc) from None
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("%s failed unexpectedly", name)
        raise DBusError(
            error_name(ErrorKind.FAILED), "internal error; see the daemon log"
        ) from None
    return dbusio.pack(to_wire(result) if isinstance(result, Event) else result)


def sync_options(options: dict[str, Any]) -> dict[str, Any]:
    """SyncToken's options dict -> keyword arguments of ClockSync.sync (or StationError)."""
    opts = dbusio.unpack(options)
    unknown = sorted(set(opts) - _SYNC_OPTIONS)
    if unknown:
        raise StationError(
            ErrorKind.INVALID,
            f"unknown option(s) {', '.join(unknown)}",
            f"Known: {', '.join(sorted(_SYNC_OPTIONS))}.",
        )
    kwargs: dict[str, Any] = {
        "reader": str(opts.get("reader", "")),
        "confirm_untrusted_clock": bool(opts.get("confirm_untrusted_clock", False)),
    }
    given = [k for k in ("algorithm", "period", "display_timeout") if k in opts]
    if given:
        if len(given) != 3:
            raise StationError(
                ErrorKind.INVALID,
                "algorithm, period and display_timeout go together: a clock write rewrites "
                "all three",
                "Give all three, or none to use what the station knows.",
            )
        try:
            kwargs["settings"] = TokenSettings(
                HmacAlgorithm.parse(str(opts["algorithm"])),
                int(opts["period"]),
                int(opts["display_timeout"]),
            )
        except (InvalidInput, ValueError) as exc:
            raise StationError(ErrorKind.INVALID, str(exc)) from None
    return kwargs
