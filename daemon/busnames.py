"""Names of the D-Bus interface, shared by the service (bus.py) and its clients.

Kept apart so that clients (the CLI, the tray) do not import the service side.
"""

from __future__ import annotations

BUS_NAME = "org.tokenstation.TokenStation1"
OBJECT_PATH = "/org/tokenstation/TokenStation1"
INTERFACE = "org.tokenstation.TokenStation1"
API_VERSION = 1
ERROR_PREFIX = INTERFACE + ".Error."

#: StationError.kind -> D-Bus error name suffix.
ERRORS = {
    "not-present": "NotPresent",
    "refused": "Refused",
    "needs-confirmation": "NeedsConfirmation",
    "busy": "Busy",
    "failed": "Failed",
    "invalid": "InvalidArgs",
}


def error_name(kind: str) -> str:
    """The D-Bus error name for a station error kind."""
    return ERROR_PREFIX + ERRORS.get(kind, "Failed")
