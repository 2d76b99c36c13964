"""Both ends of the policy test's signals, as separate processes (each may run as
another user): ``emit ADDRESS MEMBER...`` owns the station's bus name and sends each
signal of the interface, then the marker (a public ``ReaderAdded`` with reader
``end``); ``listen ADDRESS`` subscribes as any client would, prints ``ready``, and on
the marker prints the members it received as one JSON list. Messages of one connection
arrive in order, so the marker needs no waiting."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from tokenstation.daemon.bus import dbusio
from tokenstation.daemon.bus.names import BUS_NAME, INTERFACE, OBJECT_PATH

DBUS = ("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus")


def signal(member: str, key: str, value: str) -> Any:
    return dbusio.Message(
        message_type=dbusio.MessageType.SIGNAL,
        path=OBJECT_PATH,
        interface=INTERFACE,
        member=member,
        signature="a{sv}",
        body=[dbusio.pack({key: value})],
    )


async def emit(address: str, members: list[str]) -> None:
    bus = await dbusio.connect(address=address)
    (reply,) = await dbusio.call(bus, *DBUS, "RequestName", "su", [BUS_NAME, 4])
    assert reply == 1, f"could not own {BUS_NAME} (reply {reply})"
    for member in members:
        bus.send(signal(member, "file", "payroll-2026.csv"))
    bus.send(signal("ReaderAdded", "reader", "end"))
    await dbusio.call(bus, *DBUS, "GetId")  # a round trip: everything before it is sent


async def listen(address: str) -> None:
    bus = await dbusio.connect(address=address)
    got: list[str] = []
    done = asyncio.Event()

    def on_message(msg: Any) -> None:
        if msg.message_type != dbusio.MessageType.SIGNAL or msg.interface != INTERFACE:
            return
        payload = dbusio.unpack(msg.body[0]) if msg.body else {}
        if msg.member == "ReaderAdded" and payload.get("reader") == "end":
            done.set()
        else:
            got.append(msg.member)

    bus.add_message_handler(on_message)
    await dbusio.add_match(bus, f"type='signal',interface='{INTERFACE}'")
    print("ready", flush=True)
    await asyncio.wait_for(done.wait(), 30)
    print(json.dumps(got), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "emit":
        asyncio.run(emit(sys.argv[2], sys.argv[3:]))
    else:
        asyncio.run(listen(sys.argv[2]))
