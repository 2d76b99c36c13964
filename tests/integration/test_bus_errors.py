"""The bus never carries a traceback: every method and every property getter, made to
fail, answers with one sentence and a next step (no traceback, file path or exception
name); and with the store broken underneath the properties still answer from what the
daemon holds.

The interface is served for real, in process, on a private dbus-daemon; the station
and its features behind it are the real ones (the in-process simulator for a token)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tokenstation.daemon.bus import dbusio
from tokenstation.daemon.bus.client import DaemonError, StationClient
from tokenstation.daemon.bus.interface import StationInterface
from tokenstation.daemon.bus.names import BUS_NAME, INTERFACE, OBJECT_PATH
from tokenstation.daemon.bus.ops import DAEMON_TAKES_FDS
from tokenstation.daemon.clocksync.sync import ClockSync
from tokenstation.daemon.config import Config
from tokenstation.daemon.events import ErrorKind
from tokenstation.daemon.provisioning.provisioner import Provisioner
from tokenstation.daemon.provisioning.queue import JobQueue
from tokenstation.daemon.station import StationError
from tokenstation.daemon.storage.database import StoreUnavailable

from station_rig import C302, Rig

PROPS = "org.freedesktop.DBus.Properties"
GETTERS = ("Version", "Readers", "Present", "QueueLength", "Paused")

#: Every method with arguments it accepts (``FD`` is replaced by an open descriptor).
FD = object()
METHODS: list[tuple[str, str, list[Any]]] = [
    ("GetStatus", "", []),
    ("ListPresent", "", []),
    ("ListTokens", "", []),
    ("GetToken", "s", [C302]),
    ("SyncToken", "sa{sv}", [C302, {}]),
    ("Pause", "", []),
    ("Resume", "", []),
    ("ListJobs", "uuas", [0, 0, []]),
    ("IngestFile", "hs", [FD, "alice.txt"]),
    ("RemoveJob", "u", [1]),
    ("RetryJob", "u", [1]),
    ("GenerateJobs", "a{sv}", [{}]),
    ("BurnJob", "us", [1, C302]),
    ("SkipJob", "us", [1, C302]),
    ("BurnAccount", "hssa{sv}", [FD, "alice.txt", C302, {}]),
    ("DeleteProfile", "su", [C302, 1]),
]

#: What no error reply may hold: a traceback, a file path, a Python exception's name.
LEAKS = re.compile(r"Traceback|File \"|/[\w.-]+/|\.py\b|\b[A-Z]\w*(Error|Exception|Unavailable)\b")

BROKEN_TEXT = (
    'Traceback (most recent call last):\n  File "/usr/lib/python3/dist-packages/x.py", '
    "line 1, in f\nKeyError: 'x'"
)


class Broken:
    """Stands for the station or a feature: every attribute raises ``exc``."""

    def __init__(self, exc: Exception) -> None:
        self._exc = exc

    def __getattr__(self, name: str) -> Any:
        raise self._exc


async def call(bus: Any, member: str, signature: str, body: list[Any], tmp: Path) -> Any:
    fds: list[int] = []
    args = []
    for value in body:
        if value is FD:
            path = tmp / "alice.txt"
            path.write_text("otpauth://totp/Bitbucket:alice?secret=JBSWY3DPEHPK3PXP\n")
            fds.append(os.open(path, os.O_RDONLY))
            args.append(len(fds) - 1)
        else:
            args.append(value)
    interface = PROPS if member in ("Get", "GetAll") else INTERFACE
    reply = await dbusio.call_reply(
        bus, BUS_NAME, OBJECT_PATH, interface, member, signature, args, unix_fds=fds
    )
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    return reply


def error_text(reply: Any) -> str:
    """The error reply's message and next step (each its own string), as a person reads them."""
    assert reply.message_type == dbusio.MessageType.ERROR, reply.body
    assert reply.error_name.startswith(INTERFACE + ".Error."), reply.error_name
    assert reply.signature == "ss", reply.body  # the message, then the next step
    text, next_step = reply.body
    assert next_step and not text.endswith("."), reply.body  # a sentence each, not joined
    return f"{text}. {next_step}"


def clean(text: str) -> None:
    assert not LEAKS.search(text), text
    assert len(text) < 400 and ". " in text, text  # a sentence, then the next step


@pytest.fixture
def served(private_bus: str, tmp_path: Path) -> Callable[..., Any]:
    """Run ``scenario(rig, prov, iface, client)`` with the interface served on the bus."""

    def run(scenario: Callable[..., Any]) -> None:
        async def main() -> None:
            rig = Rig(tmp_path, 0.0, Config())
            queue = JobQueue(tmp_path / "queue.sqlite3")
            prov = Provisioner(
                rig.station,
                queue,
                rig.cfg,
                drop_folder=tmp_path / "drop",
                log_path=tmp_path / "log.csv",
                loop=asyncio.get_running_loop(),
            )
            prov.start()
            iface = StationInterface(rig.station, ClockSync(rig.station), prov)
            server = await dbusio.connect("session", private_bus, unix_fds=DAEMON_TAKES_FDS)
            await server.request_name(BUS_NAME, dbusio.NameFlag.DO_NOT_QUEUE)
            server.export(OBJECT_PATH, iface)
            client = await dbusio.connect("session", private_bus, unix_fds={})
            try:
                await scenario(rig, prov, iface, client)
            finally:
                await dbusio.disconnect(client)
                await dbusio.disconnect(server)
                await rig.station.close()
                prov.close()

        asyncio.run(main())

    return run


@pytest.mark.parametrize(
    "failure",
    [
        RuntimeError(BROKEN_TEXT),
        StoreUnavailable("the shared database (postgresql x@/tmp/pg-sock/db) cannot be reached"),
    ],
    ids=["unexpected", "store-away"],
)
def test_every_method_and_getter_made_to_fail_answers_a_sentence(
    served: Callable[..., Any], tmp_path: Path, failure: Exception
) -> None:
    async def scenario(rig: Rig, prov: Provisioner, iface: Any, client: Any) -> None:
        exported = {m.name for m in dbusio.ServiceInterface._get_methods(iface)}
        assert exported == {name for name, _s, _b in METHODS}  # every method is tried
        iface.station = iface.clock = iface.provisioner = Broken(failure)
        for member, signature, body in METHODS:
            clean(error_text(await call(client, member, signature, body, tmp_path)))
        for name in GETTERS[1:]:  # Version is a constant: it cannot fail
            reply = await call(client, "Get", "ss", [INTERFACE, name], tmp_path)
            clean(error_text(reply))
        clean(error_text(await call(client, "GetAll", "s", [INTERFACE], tmp_path)))

    served(scenario)


def test_with_the_store_broken_underneath_properties_answer_and_errors_are_sentences(
    served: Callable[..., Any], tmp_path: Path
) -> None:
    async def scenario(rig: Rig, prov: Provisioner, iface: Any, client: Any) -> None:
        rig.place()
        await rig.wait_for(type(rig.events[0]))  # the reader's event
        for _ in range(200):
            if any(p.get("serial") == C302 for p in rig.station.present()):
                break
            await asyncio.sleep(0.01)
        rig.station.store.close()  # the registry and the queue fail every statement now
        prov.queue.close()
        reply = await call(client, "GetAll", "s", [INTERFACE], tmp_path)
        assert reply.message_type == dbusio.MessageType.METHOD_RETURN
        values = dbusio.unpack(reply.body[0])
        assert values["QueueLength"] == 0 and values["Paused"] is False
        assert [p["serial"] for p in values["Present"]] == [C302]
        status = await call(client, "GetStatus", "", [], tmp_path)
        assert status.message_type == dbusio.MessageType.METHOD_RETURN
        for member, signature, body in METHODS:
            reply = await call(client, member, signature, body, tmp_path)
            if reply.message_type == dbusio.MessageType.ERROR:
                clean(error_text(reply))

    served(scenario)


def test_the_next_step_travels_as_its_own_field_however_many_periods_either_holds(
    served: Callable[..., Any], tmp_path: Path
) -> None:
    """A message holding ". " (e.g. "i.e. ") and a next step of two sentences reach the
    client each whole: nothing joins them into one text that is split again."""
    message = "job 7 (Acme: e.g. alice. bob) is bound to token 1. 2"
    next_step = "Place token 1. 2 first. Then run it again."

    async def scenario(rig: Rig, prov: Provisioner, iface: Any, client: Any) -> None:
        class Refusing:
            def __getattr__(self, name: str) -> Any:
                raise StationError(ErrorKind.REFUSED, message, next_step)

        iface.provisioner = Refusing()
        station_client = StationClient(client)
        with pytest.raises(DaemonError) as caught:
            await station_client.remove_job(7)
        assert caught.value.kind == ErrorKind.REFUSED
        assert (caught.value.text, caught.value.next_step) == (message, next_step)

    served(scenario)
