"""The only module that imports the D-Bus library: dbus-next, or dbus-fast when installed
(and not one that miscounts UTF-8 strings, as Debian 12's 1.84 does).

dbus-fast is the maintained fork of dbus-next with the same API, so the choice is one
import here; ``TOKENSTATION_DBUS=dbus-next`` (or ``dbus-fast``) forces one. Also here: the
dbus-next socket leak on disconnect, its deprecation warnings, and conversion between
plain Python values and ``a{sv}`` dictionaries.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any


def _miscounts_utf8(lib: Any) -> bool:
    """Whether this dbus-fast sends a string's length in characters, not UTF-8 bytes
    (fixed in 2.11.1); the bus daemon disconnects a client that does."""
    try:
        probe = lib.Message(
            destination="a.b", path="/a", interface="a.b", member="M", signature="s", body=["±"]
        )
        data = bytes(probe._marshall(False))
    except Exception:  # a private API that may change: then it cannot tell
        return False
    return data.endswith(b"\x01\x00\x00\x00\xc2\xb1\x00")


def _load() -> tuple[str, Any, Any, Any]:
    """dbus-fast if present and sound, else dbus-next; TOKENSTATION_DBUS=dbus-next|dbus-fast
    forces one."""
    forced = os.environ.get("TOKENSTATION_DBUS", "")
    order = {"dbus-next": ["dbus_next"], "dbus-fast": ["dbus_fast"]}.get(
        forced, ["dbus_fast", "dbus_next"]
    )
    for name in order:
        try:
            with warnings.catch_warnings():
                # dbus-next's service module warns on Python 3.13 (no_type_check_decorator).
                warnings.simplefilter("ignore", DeprecationWarning)
                lib = importlib.import_module(name)
                service = importlib.import_module(name + ".service")
                aio = importlib.import_module(name + ".aio")
        except ImportError:
            continue
        if name == "dbus_fast" and not forced and _miscounts_utf8(lib):
            continue  # Debian 12's 1.84: the bus would drop us at the first non-ASCII text
        return name.replace("_", "-"), lib, service, aio
    raise ImportError(f"tokenstation needs {' or '.join(n.replace('_', '-') for n in order)}")


LIBRARY, _lib, _service, _aio = _load()
Message: Any = _lib.Message
MessageType: Any = _lib.MessageType
Variant: Any = _lib.Variant
BusType: Any = _lib.BusType
DBusError: Any = _lib.DBusError
NameFlag: Any = _lib.NameFlag
RequestNameReply: Any = _lib.RequestNameReply
PropertyAccess: Any = _lib.PropertyAccess
ServiceInterface: Any = _service.ServiceInterface


def _quiet(factory: Any) -> Any:
    """``factory`` (dbus-next's method/signal/dbus_property) without the Python 3.13
    DeprecationWarning each call of it raises (typing.no_type_check_decorator)."""

    def quiet_factory(*args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*no_type_check_decorator", DeprecationWarning)
            return factory(*args, **kwargs)

    return quiet_factory


method: Any = _quiet(_service.method)
signal: Any = _quiet(_service.signal)
dbus_property: Any = _quiet(_service.dbus_property)
MessageBus: Any = _aio.MessageBus

DBUS_NAME = "org.freedesktop.DBus"
DBUS_PATH = "/org/freedesktop/DBus"


async def connect(bus: str = "session", address: str | None = None) -> Any:
    """Connect to the session or system bus (or an explicit address)."""
    bus_type = BusType.SYSTEM if bus == "system" else BusType.SESSION
    if address:
        return await MessageBus(bus_address=address).connect()
    return await MessageBus(bus_type=bus_type).connect()


async def disconnect(bus: Any) -> None:
    """Disconnect and close the socket (dbus-next leaks it otherwise)."""
    bus.disconnect()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(bus.wait_for_disconnect(), 2.0)
    sock = getattr(bus, "_sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()


async def call(  # noqa: PLR0917 (mirrors the D-Bus message header fields)
    bus: Any,
    destination: str,
    path: str,
    interface: str,
    member: str,
    signature: str = "",
    body: Sequence[Any] = (),
) -> list[Any]:
    """One method call; a D-Bus error reply raises :class:`DBusError`."""
    reply = await bus.call(
        Message(
            destination=destination,
            path=path,
            interface=interface,
            member=member,
            signature=signature,
            body=list(body),
        )
    )
    if reply is None:
        return []
    if reply.message_type == MessageType.ERROR:
        text = reply.body[0] if reply.body else reply.error_name
        raise DBusError(reply.error_name, text, reply)
    return list(reply.body)


async def add_match(bus: Any, rule: str) -> None:
    """Ask the bus to route matching signals to this connection."""
    await call(bus, DBUS_NAME, DBUS_PATH, DBUS_NAME, "AddMatch", "s", [rule])


async def name_has_owner(bus: Any, name: str) -> bool:
    """True when ``name`` is owned on the bus."""
    (owned,) = await call(bus, DBUS_NAME, DBUS_PATH, DBUS_NAME, "NameHasOwner", "s", [name])
    return bool(owned)


def _variant(value: Any) -> Any:
    if isinstance(value, bool):
        return Variant("b", value)
    if isinstance(value, int):
        return Variant("x", value)
    if isinstance(value, float):
        return Variant("d", value)
    if isinstance(value, str):
        return Variant("s", value)
    if isinstance(value, Mapping):
        return Variant("a{sv}", pack(value))
    if isinstance(value, list | tuple):
        if all(isinstance(v, str) for v in value):
            return Variant("as", list(value))
        if all(isinstance(v, Mapping) for v in value):
            return Variant("aa{sv}", [pack(v) for v in value])
        return Variant("av", [_variant(v) for v in value])
    raise TypeError(f"cannot send {type(value).__name__} over D-Bus")


def pack(values: Mapping[str, Any]) -> dict[str, Any]:
    """A plain dict -> ``a{sv}``; None values are left out (D-Bus has no null)."""
    return {k: _variant(v) for k, v in values.items() if v is not None}


def unpack(value: Any) -> Any:
    """``a{sv}`` (and nested variants, lists) -> plain Python values."""
    if isinstance(value, Variant):
        return unpack(value.value)
    if isinstance(value, dict):
        return {k: unpack(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unpack(v) for v in value]
    return value
