"""The only module that imports the D-Bus library: dbus-next, or dbus-fast when installed
(and not one that miscounts UTF-8 strings, as Debian 12's 1.84 does).

dbus-fast is the maintained fork of dbus-next with the same API, so the choice is one
import here; ``TOKENSTATION_DBUS=dbus-next`` (or ``dbus-fast``) forces one. Also here: the
dbus-next socket leak on disconnect, both libraries dropping the connection when the
socket's send buffer is full (:class:`PatientSocket`), its deprecation warnings, and
conversion between plain Python values and ``a{sv}`` dictionaries.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import socket
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)


class _LibraryTraceback(logging.Filter):
    """dbus-next logs a handler's escaped error at ERROR on the root logger with the whole
    traceback ("got unexpected error processing a message: ...\n<traceback>"). Our replies
    are already sentences (bus/ops.py ``edge``); the line becomes one sentence at WARNING
    and the traceback goes to debug level, as every traceback of ours does."""

    PREFIX = "got unexpected error processing a message"

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.name == "root" and text.startswith(self.PREFIX):
            first, _, trace = text.partition("\n")
            record.msg, record.args = first, ()
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            if trace:
                log.debug("the D-Bus library's traceback of that error:\n%s", trace)
        return True


logging.getLogger().addFilter(_LibraryTraceback())


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


class ProblemError(DBusError):  # type: ignore[misc]
    """A D-Bus error reply with two strings: the message (the first, as every D-Bus client
    expects) and the next step, its own field, so neither is ever cut out of joined text."""

    def __init__(self, name: str, message: str, next_step: str = "") -> None:
        super().__init__(name, message)
        self.next_step = next_step

    def _as_message(self, msg: Any) -> Any:  # both libraries build an error reply so
        return Message(
            message_type=MessageType.ERROR,
            reply_serial=msg.serial,
            destination=msg.sender,
            error_name=self.type,
            signature="ss",
            body=[self.text, self.next_step],
        )


def error_parts(exc: Any) -> tuple[str, str]:
    """(message, next step) of a D-Bus error a call raised; the next step is "" when the
    reply carried only a message (another service, the bus itself)."""
    reply = getattr(exc, "reply", None)
    body = list(getattr(reply, "body", None) or [])
    text = str(getattr(exc, "text", exc))
    if len(body) >= 2 and isinstance(body[1], str):
        return text, body[1]
    return text, ""


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


async def connect(
    bus: str = "session",
    address: str | None = None,
    *,
    unix_fds: Mapping[tuple[str, str, str], int] | None = None,
) -> Any:
    """Connect to the session or system bus (or an explicit address).

    With ``unix_fds`` (which methods take how many descriptors; may be empty) the
    connection may pass file descriptors (type ``h``); every descriptor that arrives is
    closed unless such a method takes it (see :func:`fd_janitor`).
    """
    negotiate = unix_fds is not None
    bus_type = BusType.SYSTEM if bus == "system" else BusType.SESSION
    if address:
        conn = MessageBus(bus_address=address, negotiate_unix_fd=negotiate)
    else:
        conn = MessageBus(bus_type=bus_type, negotiate_unix_fd=negotiate)
    await conn.connect()
    writer = getattr(conn, "_writer", None)
    if writer is not None and isinstance(getattr(writer, "sock", None), socket.socket):
        writer.sock = PatientSocket(writer.sock)
    if unix_fds is not None:
        conn.add_message_handler(fd_janitor(unix_fds))
    return conn


class PatientSocket:
    """The bus socket as the library's writer sees it: a full send buffer is "0 bytes
    written, wait until writable", not an error.

    dbus-next 0.2.3 and dbus-fast 5.2 treat EAGAIN from ``send`` as fatal and drop the
    connection (python-dbus-next issue #153): a burst of signals while dbus-daemon reads
    slowly cut the daemon off its bus. Both writers handle a short write by waiting for
    the socket to become writable, so reporting 0 bytes makes them do just that.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def send(self, data: Any, flags: int = 0) -> int:
        """``socket.send``; 0 when the kernel buffer is full."""
        try:
            return self._sock.send(data, flags)
        except (BlockingIOError, InterruptedError):
            log.debug("bus socket full: waiting until it is writable")
            return 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def fd_janitor(takes: Mapping[tuple[str, str, str], int]) -> Any:
    """A message handler that closes the descriptors no method will take (a client could
    attach them to any message and exhaust the daemon's). ``takes`` maps (interface,
    member, signature) of a method call to how many of its descriptors the method
    takes and closes itself."""

    def handler(msg: Any) -> None:
        fds = list(getattr(msg, "unix_fds", None) or [])
        if not fds:
            return
        keep = 0
        if msg.message_type == MessageType.METHOD_CALL:
            keep = takes.get((msg.interface or "", msg.member or "", msg.signature or ""), 0)
        for fd in fds[keep:]:
            with contextlib.suppress(OSError):
                os.close(fd)

    return handler


async def wait_stop_or_lost(bus: Any, name: str, stop: asyncio.Event) -> str | None:
    """Wait for ``stop``; or return why the daemon became unreachable: the bus
    connection dropped, or the bus name was taken away (NameLost)."""
    loop = asyncio.get_running_loop()
    lost: asyncio.Future[str] = loop.create_future()

    def on_message(msg: Any) -> None:
        if (
            msg.message_type == MessageType.SIGNAL
            and msg.member == "NameLost"
            and msg.interface == DBUS_NAME
            and msg.body
            and msg.body[0] == name
            and not lost.done()
        ):
            lost.set_result(f"lost the bus name {name}")

    async def disconnected() -> str:
        try:  # shielded: cancelling this wait must not cancel the library's own future
            await asyncio.shield(bus.wait_for_disconnect())
        except Exception as exc:
            return f"lost the connection to the bus ({type(exc).__name__}: {exc})"
        return "lost the connection to the bus"

    bus.add_message_handler(on_message)
    waits: list[asyncio.Future[Any]] = [
        asyncio.ensure_future(stop.wait()),
        lost,
        asyncio.ensure_future(disconnected()),
    ]
    try:
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
        with contextlib.suppress(Exception):
            bus.remove_message_handler(on_message)
    if stop.is_set():
        return None
    return str(next(iter(done)).result())


async def disconnect(bus: Any) -> None:
    """Disconnect and close the socket (dbus-next leaks it otherwise)."""
    with contextlib.suppress(Exception):
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
    *,
    unix_fds: Sequence[int] = (),
) -> list[Any]:
    """One method call; a D-Bus error reply raises :class:`DBusError`."""
    reply = await call_reply(
        bus, destination, path, interface, member, signature, body, unix_fds=unix_fds
    )
    if reply is None:
        return []
    if reply.message_type == MessageType.ERROR:
        text = reply.body[0] if reply.body else reply.error_name
        raise DBusError(reply.error_name, text, reply)
    return list(reply.body)


async def call_reply(  # noqa: PLR0917 (mirrors the D-Bus message header fields)
    bus: Any,
    destination: str,
    path: str,
    interface: str,
    member: str,
    signature: str = "",
    body: Sequence[Any] = (),
    *,
    unix_fds: Sequence[int] = (),
) -> Any:
    """One method call; its reply message as it came (a return or an error), or None."""
    return await bus.call(
        Message(
            destination=destination,
            path=path,
            interface=interface,
            member=member,
            signature=signature,
            body=list(body),
            unix_fds=list(unix_fds),
        )
    )


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
