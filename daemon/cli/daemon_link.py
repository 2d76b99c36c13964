"""Calling the running daemon from a command: one D-Bus round trip, errors as exit codes.

No daemon (or no bus) is exit 3 with what is missing and how to start it, unless the
command has a way without the daemon (``tokens`` reads the registry, ``sync`` talks to
the reader); those ask with ``fallback=True`` and get :class:`DaemonAbsent` instead.
"""

from __future__ import annotations

from tokenstation.daemon.cli.common import (
    CODE_FOR_KIND,
    EXIT_FAILED,
    EXIT_UNAVAILABLE,
    CliError,
    ensure_logging,
)
from tokenstation.daemon.token.problem import Problem, ProblemKind

TYPE_CHECKING = False  # True for type checkers; saves importing typing at start-up
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from typing import Any

    from tokenstation.daemon.bus.client import StationClient


class DaemonAbsent(Problem):
    """No daemon to ask (no bus, or nobody owns the name): ``message`` and ``next_step``."""

    kind = ProblemKind.UNAVAILABLE

    def __init__(self, message: str, next_step: str) -> None:
        super().__init__(message, next_step)


#: What to do when the daemon's answer names no next step itself.
NEXT_FOR_KIND = {
    "not-present": "Place the token on a reader (display lit) and run it again.",
    "busy": "Wait a moment and run it again.",
    "refused": "Nothing was written.",
    "needs-confirmation": "Nothing was written.",
    "invalid": "Nothing was changed.",
    "denied": "Ask whoever runs the daemon to let you use it.",
    "failed": "The daemon's log has the details: `journalctl --user -u tokenstation` "
    "(station: `journalctl -u tokenstation-station`).",
}


class DaemonRefused(CliError):
    """The daemon answered with an error; ``kind`` is its StationError kind."""

    def __init__(self, kind: str, message: str, next_step: str = "") -> None:
        next_step = next_step or NEXT_FOR_KIND.get(kind, NEXT_FOR_KIND["failed"])
        known = kind in ProblemKind.__members__.values()
        problem = ProblemKind(kind) if known else ProblemKind.FAILED
        super().__init__(message, CODE_FOR_KIND.get(problem, EXIT_FAILED), next_step, kind=problem)


def daemon_call(
    bus: str, fn: Callable[[StationClient], Awaitable[Any]], *, fallback: bool = False
) -> Any:
    """Run ``fn(client)`` against the daemon on ``bus``.

    Without a daemon: exit 3 (CliError), or DaemonAbsent with ``fallback``. A "no bus
    here", and a bus that says nobody owns the daemon's name, are found without loading
    asyncio or the D-Bus library.
    """
    from tokenstation.daemon.bus import address as busaddress

    if busaddress.missing(bus):
        absent = DaemonAbsent(busaddress.unreachable(bus), busaddress.reach_advice(bus))
    elif _nobody_owns_name(bus):
        absent = DaemonAbsent(busaddress.not_running(bus), busaddress.start_advice(bus))
    else:
        try:
            return _call(bus, fn)
        except DaemonAbsent as exc:
            absent = exc
    if fallback:
        raise absent
    raise CliError(absent.message, EXIT_UNAVAILABLE, absent.next_step)


def _nobody_owns_name(bus: str) -> bool:
    """True when the bus itself says no daemon owns the name: asked with a minimal client
    (daemon/bus/nameprobe.py), not asyncio and the D-Bus library. False when it cannot
    tell; the full client then asks (and words what went wrong) as before."""
    from tokenstation.daemon.bus import address as busaddress
    from tokenstation.daemon.bus import nameprobe

    return nameprobe.name_has_owner(busaddress.address(bus), busaddress.BUS_NAME) is False


def _call(bus: str, fn: Callable[[StationClient], Awaitable[Any]]) -> Any:
    ensure_logging()
    import asyncio

    from tokenstation.daemon.bus.client import DaemonError, DaemonNotRunning, StationClient

    async def run() -> Any:
        client = await StationClient.connect(bus)
        try:
            return await fn(client)
        finally:
            await client.close()

    try:
        return asyncio.run(run())
    except DaemonNotRunning as exc:
        raise DaemonAbsent(exc.message, exc.next_step) from None
    except DaemonError as exc:
        raise DaemonRefused(exc.kind, exc.text, exc.next_step) from None
