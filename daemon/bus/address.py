"""Where the D-Bus buses are, and what to say when one (or the daemon on it) is not there.

Pure standard library, so a command can tell "no bus here" without loading the D-Bus
library, and so that the CLI, the tray and the host-clock check word it alike.
"""

from __future__ import annotations

import os

SYSTEM_DEFAULT = "unix:path=/var/run/dbus/system_bus_socket"
#: The daemon's well-known name (names.py re-exports it with the rest of the interface).
BUS_NAME = "org.tokenstation.TokenStation1"


def address(bus: str) -> str:
    """The address the D-Bus library would use for ``bus`` ("" when none is configured)."""
    if bus == "system":
        return os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", "") or SYSTEM_DEFAULT
    return os.environ.get("DBUS_SESSION_BUS_ADDRESS", "")


def unix_target(addr: str) -> str | None:
    """The socket of the first ``unix:`` entry of ``addr``: its ``path=``, or its
    ``abstract=`` name with a leading NUL (Linux); None when there is neither."""
    for entry in addr.split(";"):
        transport, _, params = entry.partition(":")
        if transport != "unix":
            continue
        for param in params.split(","):
            key, _, value = param.partition("=")
            if key == "path":
                return value
            if key == "abstract":
                return "\0" + value
        return None
    return None


def socket_path(addr: str) -> str | None:
    """The socket file of the first ``unix:path=`` entry of ``addr`` (None for others)."""
    target = unix_target(addr)
    return None if target is None or target.startswith("\0") else target


def missing(bus: str, addr: str | None = None) -> bool:
    """True when ``bus`` certainly cannot be reached: no address, or no socket at its path."""
    addr = address(bus) if addr is None else addr
    if not addr:
        return True
    path = socket_path(addr)
    return path is not None and not os.path.exists(path)


def unreachable(bus: str, addr: str | None = None, exc: BaseException | None = None) -> str:
    """What went wrong reaching ``bus`` (one clause, no advice)."""
    addr = address(bus) if addr is None else addr
    if not addr:
        return (
            f"there is no D-Bus {bus} bus here: DBUS_SESSION_BUS_ADDRESS is not set "
            "(a shell outside a desktop session)"
        )
    path = socket_path(addr)
    if path is not None and not os.path.exists(path):
        return f"there is no D-Bus {bus} bus here: nothing at {path}"
    why = f" ({_short(exc)})" if exc is not None else ""
    return f"cannot connect to the D-Bus {bus} bus at {addr}{why}"


def reach_advice(bus: str) -> str:
    """The next step when ``bus`` cannot be reached."""
    if bus == "system":
        return "Start the system bus (`sudo systemctl start dbus`)."
    return (
        "Run it inside your desktop session, or point DBUS_SESSION_BUS_ADDRESS at the "
        "session bus (usually unix:path=/run/user/$UID/bus); for a station's daemon add "
        "--bus system."
    )


def not_running(bus: str) -> str:
    """The words for "nobody owns the daemon's name on ``bus``"."""
    return f"the tokenstation daemon is not running on the D-Bus {bus} bus"


def start_advice(bus: str) -> str:
    """The next step when the daemon is not running on ``bus``."""
    if bus == "system":
        return "Start it with `sudo systemctl start tokenstation-station`."
    return (
        "Start it with `systemctl --user start tokenstation` (installed service) or "
        "`tokenstation daemon &`."
    )


def _short(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__
