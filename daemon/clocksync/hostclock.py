"""Is the host clock fit to set tokens from? systemd-timedated's NTPSynchronized, cached.

Asked over the system bus (``DBUS_SYSTEM_BUS_ADDRESS`` is honoured). Where timedated
cannot be reached the answer is "not trusted" with the reason, unless the operator's
configuration says to trust the clock (``[clock] trust = "assume-synchronised"``).
"""

from __future__ import annotations

import logging
import time

from tokenstation.daemon.bus import address as busaddress
from tokenstation.daemon.bus import dbusio
from tokenstation.daemon.clocksync.policy import ClockTrust

log = logging.getLogger(__name__)

TIMEDATE_NAME = "org.freedesktop.timedate1"
TIMEDATE_PATH = "/org/freedesktop/timedate1"
PROPERTIES = "org.freedesktop.DBus.Properties"


class HostClockTrust:
    """Answers "is the host clock synchronised?", at most once per ``cache_s``."""

    def __init__(
        self, mode: str = "timedated", cache_s: float = 10.0, *, log_changes: bool = True
    ) -> None:
        self.mode = mode
        self.log_changes = log_changes
        self.cache_s = cache_s
        self._bus: object | None = None
        self._cached: tuple[float, ClockTrust] | None = None
        self._said: str = ""

    async def check(self, *, fresh: bool = False) -> ClockTrust:
        """The current answer (cached unless ``fresh``)."""
        if self.mode == "assume-synchronised":
            return ClockTrust(
                True,
                "configuration",
                'trusted by configuration ([clock] trust = "assume-synchronised")',
            )
        now = time.monotonic()
        if not fresh and self._cached is not None and now - self._cached[0] < self.cache_s:
            return self._cached[1]
        trust = await self._ask()
        self._cached = (now, trust)
        if self.log_changes and trust.reason != self._said:
            self._said = trust.reason
            (log.info if trust.trusted else log.warning)("host clock: %s", trust.reason)
        return trust

    async def _ask(self) -> ClockTrust:
        try:
            if self._bus is None:
                self._bus = await dbusio.connect("system")
        except Exception as exc:  # no system bus, access denied, ...
            await self.close()
            return _unavailable(busaddress.unreachable("system", exc=exc))
        try:
            (value,) = await dbusio.call(
                self._bus,
                TIMEDATE_NAME,
                TIMEDATE_PATH,
                PROPERTIES,
                "Get",
                "ss",
                [TIMEDATE_NAME, "NTPSynchronized"],
            )
        except Exception as exc:  # no timedated, access denied, ...
            await self.close()
            return _unavailable(_timedated_problem(exc))
        if dbusio.unpack(value) is True:
            return ClockTrust(
                True, "timedated", "synchronised (systemd-timedated: NTPSynchronized)"
            )
        return ClockTrust(
            False,
            "timedated",
            "not synchronised (systemd-timedated: NTPSynchronized is false; check "
            "`timedatectl` and the NTP service)",
        )

    async def close(self) -> None:
        """Drop the system-bus connection."""
        bus, self._bus = self._bus, None
        if bus is not None:
            await dbusio.disconnect(bus)


def _unavailable(problem: str) -> ClockTrust:
    return ClockTrust(
        False,
        "unavailable",
        f"{problem}, so whether the host clock is synchronised is unknown (install and start "
        'systemd-timedated, or set [clock] trust = "assume-synchronised" if you vouch for it)',
    )


def _timedated_problem(exc: BaseException) -> str:
    """Why systemd-timedated did not answer, naming what is missing."""
    name = str(getattr(exc, "type", ""))
    if name.endswith(("ServiceUnknown", "NameHasNoOwner")):
        return f"systemd-timedated ({TIMEDATE_NAME}) is not available on the system bus"
    if name.endswith("AccessDenied"):
        return "the system bus refused the question to systemd-timedated (access denied)"
    text = str(getattr(exc, "text", "") or exc).strip()
    detail = text.splitlines()[0][:160] if text else type(exc).__name__
    return f"systemd-timedated did not answer ({detail})"
