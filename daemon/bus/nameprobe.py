"""Ask a D-Bus bus whether a name has an owner, with the standard library alone.

`tokenstation status` on a desktop where the daemon is not running would otherwise load
asyncio and the D-Bus library (about 90 ms, BENCHMARKS.md) only to learn that nobody owns the name.
This is the smallest honest client: connect to the bus's unix socket, authenticate
(EXTERNAL, by uid), send Hello and NameHasOwner, read the answer. Anything it does not
expect (another transport, a refusal, an error reply, a slow bus) gives ``None``: the
caller then asks through the D-Bus library as before, which says what went wrong.
Header fields start at offset 16 of a message, so aligning within them aligns in it.
"""

from __future__ import annotations

import _socket as socket  # socket.py's C module: no ~2 ms turning constants into enums
import os

from tokenstation.daemon.bus.address import unix_target

#: Seconds the probe waits for the bus before leaving the question to the D-Bus library.
TIMEOUT_S = 2.0

_DBUS = ("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus")
_METHOD_CALL, _METHOD_RETURN = 1, 2
_MAX_MESSAGE = 1 << 20
_MAX_MESSAGES = 16


def _int(data: bytes, big: bool) -> int:
    return int.from_bytes(data[::-1] if big else data, "little")


def _pad(buf: bytearray, align: int) -> None:
    buf.extend(b"\0" * (-len(buf) % align))


def _string(buf: bytearray, text: str, sig: bool = False) -> None:
    raw = text.encode()
    if sig:
        buf.append(len(raw))
    else:
        _pad(buf, 4)
        buf.extend(len(raw).to_bytes(4, "little"))
    buf.extend(raw + b"\0")


def _call(serial: int, member: str, arg: str | None = None) -> bytes:
    """A little-endian METHOD_CALL to the bus itself, with at most one string argument."""
    body = bytearray()
    if arg is not None:
        _string(body, arg)
    dest, path, iface = _DBUS
    fields = bytearray()
    entries = [(1, "o", path), (2, "s", iface), (3, "s", member), (6, "s", dest)]
    if arg is not None:
        entries.append((8, "g", "s"))
    for code, kind, value in entries:
        _pad(fields, 8)
        fields.append(code)
        _string(fields, kind, sig=True)
        _string(fields, value, sig=kind == "g")
    head = bytearray(b"l")
    head += bytes((_METHOD_CALL, 0, 1))
    head += len(body).to_bytes(4, "little") + serial.to_bytes(4, "little")
    head += len(fields).to_bytes(4, "little") + fields
    _pad(head, 8)
    return bytes(head + body)


class _Reader:
    """Whole messages from the socket: (type, reply serial, body, big-endian)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _need(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the bus closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk or len(self.buf) > 4096:
                raise ConnectionError("no answer to the authentication")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def message(self) -> tuple[int, int | None, bytes, bool]:
        fixed = self._need(16)
        if fixed[0] not in b"lB":
            raise ValueError("not a D-Bus message")
        big = fixed[0] == ord("B")
        body_len = _int(fixed[4:8], big)
        fields_len = _int(fixed[12:16], big)
        if body_len + fields_len > _MAX_MESSAGE:
            raise ValueError("message too large")
        fields = self._need(fields_len + (-fields_len % 8))[:fields_len]
        body = self._need(body_len)
        return fixed[1], _reply_serial(fields, big), body, big


def _reply_serial(fields: bytes, big: bool) -> int | None:
    """REPLY_SERIAL from the header fields (array of (byte, variant))."""
    pos = 0
    while pos < len(fields):
        pos += -pos % 8
        code, sig_len = fields[pos], fields[pos + 1]
        sig = fields[pos + 2 : pos + 2 + sig_len]
        pos += 3 + sig_len
        if sig in (b"s", b"o"):
            pos += -pos % 4
            pos += 4 + _int(fields[pos : pos + 4], big) + 1
        elif sig == b"g":
            pos += 1 + fields[pos] + 1
        elif sig == b"u":
            pos += -pos % 4
            if code == 5:
                return _int(fields[pos : pos + 4], big)
            pos += 4
        else:
            raise ValueError(f"unexpected header field type {sig!r}")
    return None


def _connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT_S)
    try:
        sock.connect(path)
    except BaseException:
        sock.close()
        raise
    return sock


def name_has_owner(address: str, name: str) -> bool | None:
    """Whether ``name`` has an owner on the bus at ``address``; None when it cannot tell."""
    target = unix_target(address)
    if target is None or "%" in target:  # escaped addresses: left to the library
        return None
    try:
        sock = _connect(target)
    except OSError:
        return None
    try:
        return _ask(sock, name)
    except (OSError, ValueError, IndexError):
        return None
    finally:
        sock.close()


def _ask(sock: socket.socket, name: str) -> bool | None:
    reader = _Reader(sock)
    uid = str(os.getuid()).encode().hex()
    sock.sendall(b"\0AUTH EXTERNAL " + uid.encode() + b"\r\n")
    if not reader.line().startswith(b"OK "):
        return None
    sock.sendall(b"BEGIN\r\n" + _call(1, "Hello") + _call(2, "NameHasOwner", name))
    for _ in range(_MAX_MESSAGES):  # the Hello reply and NameAcquired come first
        kind, reply_to, body, big = reader.message()
        if reply_to != 2:
            continue
        if kind != _METHOD_RETURN or len(body) != 4:
            return None
        return _int(body, big) != 0
    return None
