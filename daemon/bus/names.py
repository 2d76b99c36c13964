"""Names of the D-Bus interface, shared by the service (bus.py) and its clients.

Kept apart so that clients (the CLI, the tray) do not import the service side.
"""

from __future__ import annotations

from tokenstation.daemon.bus.address import BUS_NAME
from tokenstation.daemon.events import ErrorKind

__all__ = [
    "API_VERSION",
    "BUS_NAME",
    "ERRORS",
    "ERROR_PREFIX",
    "INTERFACE",
    "KINDS",
    "OBJECT_PATH",
    "error_name",
]
OBJECT_PATH = "/org/tokenstation/TokenStation1"
INTERFACE = "org.tokenstation.TokenStation1"
API_VERSION = 1
ERROR_PREFIX = INTERFACE + ".Error."

#: The one table of D-Bus error names: a problem's kind -> the name suffix the daemon
#: replies with (docs/dbus-api.md). ``denied`` is the bus's own AccessDenied, never the
#: daemon's; ``unavailable`` (the shared database away) is told as Failed.
ERRORS: dict[ErrorKind, str] = {
    ErrorKind.NOT_PRESENT: "NotPresent",
    ErrorKind.REFUSED: "Refused",
    ErrorKind.NEEDS_CONFIRMATION: "NeedsConfirmation",
    ErrorKind.BUSY: "Busy",
    ErrorKind.FAILED: "Failed",
    ErrorKind.INVALID: "InvalidArgs",
    ErrorKind.UNAVAILABLE: "Failed",
}
#: A reply's name suffix -> its kind (the first kind of that name: Failed is failed).
KINDS = {suffix: kind for kind, suffix in reversed(ERRORS.items())}


def error_name(kind: ErrorKind) -> str:
    """The D-Bus error name for a station error kind."""
    return ERROR_PREFIX + ERRORS.get(kind, "Failed")
