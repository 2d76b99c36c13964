"""A station's bus while its shared PostgreSQL is away, hung (SIGSTOP) and then stopped:
PropertiesChanged still follow placements and removals, GetAll and Get answer from what
the daemon holds (with the reachability in GetStatus), error replies are sentences, and
no log line above debug carries a traceback. Its own server, not the session's."""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pgserver import PgServer

from tokenstation.daemon.bus import dbusio
from tokenstation.daemon.bus.names import BUS_NAME, INTERFACE, OBJECT_PATH

from conftest import BusWatcher, wait_until

pytestmark = pytest.mark.pcsc

SERIAL = "86596320000111"
PROPS = "org.freedesktop.DBus.Properties"
LEAKS = re.compile(r"Traceback|File \"|\.py\b|\b[A-Z]\w*(Error|Exception|Unavailable)\b")


class PropertyWatch:
    """PropertiesChanged of the station's object, on the watcher's connection."""

    def __init__(self, watcher: BusWatcher) -> None:
        self.watcher = watcher
        self.changes: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        bus = watcher.client.bus

        def on_message(msg: Any) -> None:
            if msg.member == "PropertiesChanged" and msg.path == OBJECT_PATH:
                with self._lock:
                    self.changes.append(dbusio.unpack(msg.body[1]))

        async def setup() -> None:
            bus.add_message_handler(on_message)
            await dbusio.add_match(
                bus,
                f"type='signal',interface='{PROPS}',member='PropertiesChanged',"
                f"path='{OBJECT_PATH}'",
            )

        watcher.run(setup())

    def present_serials(self) -> list[list[str]]:
        with self._lock:
            return [
                [p.get("serial", "") for p in c["Present"]] for c in self.changes if "Present" in c
            ]

    def call(self, interface: str, member: str, signature: str = "", body: Any = ()) -> Any:
        async def send() -> Any:
            return await dbusio.call_reply(
                self.watcher.client.bus, BUS_NAME, OBJECT_PATH, interface, member, signature, body
            )

        return self.watcher.run(send())


@pytest.fixture
def own_server(cli_bus: Any, tmp_path: Path) -> Iterator[tuple[PgServer, str, Path]]:
    """A PostgreSQL server of the test's own (stopped and started here), a migrated
    database on it and a store key."""
    server = PgServer().start()
    try:
        url = server.new_database()
        key = tmp_path / "store.key"
        assert cli_bus("store", "init-key", "--key-file", str(key)).returncode == 0
        assert cli_bus("store", "migrate", "--store", url).returncode == 0
        yield server, url, key
    finally:
        server.stop()


def station(start_daemon: Any, url: str, key: Path, name: str) -> tuple[Any, BusWatcher]:
    """A daemon on the shared database, named ``name``, and its signal watcher."""
    config = f'[store]\nkey_file = "{key}"\n[station]\nname = "{name}"\n'
    return start_daemon("--store", url, config=config)  # type: ignore[no-any-return]


def answers(watch: PropertyWatch) -> dict[str, Any]:
    """GetAll answers (never an error), and so does Get QueueLength."""
    reply = watch.call(PROPS, "GetAll", "s", [INTERFACE])
    assert reply.message_type == dbusio.MessageType.METHOD_RETURN, reply.body
    one = watch.call(PROPS, "Get", "ss", [INTERFACE, "QueueLength"])
    assert one.message_type == dbusio.MessageType.METHOD_RETURN, one.body
    return dbusio.unpack(reply.body[0])  # type: ignore[no-any-return]


def a_sentence(watch: PropertyWatch, member: str, signature: str = "", body: Any = ()) -> None:
    reply = watch.call(INTERFACE, member, signature, body)
    if reply.message_type == dbusio.MessageType.ERROR:
        text, next_step = reply.body  # the message, then the next step
        assert reply.error_name.startswith(INTERFACE + ".Error."), reply.error_name
        assert next_step and not LEAKS.search(text + next_step), reply.body


def test_the_bus_tells_the_truth_while_the_shared_database_is_hung_then_stopped(
    start_daemon: Any,
    simulator: Callable[..., Any],
    cli_bus: Any,
    own_server: tuple[PgServer, str, Path],
) -> None:
    server, url, key = own_server
    daemon, bus = station(start_daemon, url, key, "desk-d")
    watch = PropertyWatch(bus)

    def status() -> dict[str, Any]:
        return json.loads(cli_bus("status", "--json").stdout)  # type: ignore[no-any-return]

    assert answers(watch)["QueueLength"] == 0
    for outage in ("hung", "stopped"):
        if outage == "hung":
            server.pause()
            wait_until(lambda: status()["store"]["reachable"] is False, 30.0, "unreachable")
        else:
            server.halt()
        seen = len(watch.present_serials())
        sim = simulator("--serial", SERIAL)
        bus.expect("TokenMeasured", timeout=20, serial=SERIAL)

        def placed(seen: int = seen) -> bool:
            return [SERIAL] in watch.present_serials()[seen:]

        wait_until(placed, 10.0, "Present with the token")
        values = answers(watch)
        assert [p["serial"] for p in values["Present"]] == [SERIAL]
        for member, signature, body in (
            ("ListTokens", "", []),
            ("GetToken", "s", [SERIAL]),
            ("ListJobs", "uuas", [0, 0, []]),
            ("RemoveJob", "u", [1]),
        ):
            a_sentence(watch, member, signature, body)
        got = status()
        assert got["store"]["reachable"] is False and got["queue_length"] == 0
        sim.stop()
        wait_until(lambda: watch.present_serials()[-1] == [], 10.0, "Present empty again")
    log = daemon.output()
    assert "event listener failed" not in log and "could not take the" not in log
    # Tracebacks only ever under a DEBUG line.
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Traceback"):
            heads = [x for x in lines[:i] if re.match(r"\d\d:\d\d:\d\d \w+ ", x)]
            assert heads and " DEBUG " in heads[-1], heads[-1:]


def test_a_station_started_while_the_database_is_down_reads_tokens_and_catches_up(
    start_daemon: Any,
    simulator: Callable[..., Any],
    cli_bus: Any,
    tmp_path: Path,
    own_server: tuple[PgServer, str, Path],
) -> None:
    server, url, key = own_server
    server.halt()
    daemon, bus = station(start_daemon, url, key, "desk-e")

    def status() -> dict[str, Any]:
        return json.loads(cli_bus("status", "--json").stdout)  # type: ignore[no-any-return]

    got = status()
    assert got["store"]["reachable"] is False and got["store"]["checked"] is False
    assert "started while it was away" in got["store"]["detail"]
    assert "UNREACHABLE" in cli_bus("status").stdout
    sim = simulator("--serial", SERIAL)
    measured = bus.expect("TokenMeasured", timeout=20, serial=SERIAL)
    assert measured["drift_method"]
    assert answers(PropertyWatch(bus))["Present"][0]["serial"] == SERIAL
    sim.stop()
    # Back: checked, reachable, and the queue works.
    server.start()
    wait_until(lambda: status()["store"]["reachable"] is True, 20.0, "reachable again")
    assert "checked" not in status()["store"]
    uri = tmp_path / "job.uri"
    seed = base64.b32encode(b"tokenstation-test-00160").decode().rstrip("=")
    uri.write_text(f"otpauth://totp/ACME:user160?secret={seed}&issuer=ACME\n")
    added = cli_bus("queue", "add", str(uri))
    assert added.returncode == 0, added.stderr
    wait_until(lambda: status()["queue_length"] == 1, 10.0, "the job counted")
    assert "Traceback" not in daemon.output()
