"""Views follow writes: every write to a token, through a real private D-Bus, into the tray.

The daemon side is the real StationInterface over a Station, ClockSync and Provisioner
whose cards are the in-process simulators (a C302-i, a Molto2v2); the client side is the
real StationClient decoding the signals into the TrayModel. After each write (a sync, a
burn, a Molto2 profile sync, a Molto2 burn, a delete) the tray's menu lines and the
daemon's own ListPresent and its PropertiesChanged (Present) must show the token as it is
after the write.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tokenstation.daemon.bus import dbusio
from tokenstation.daemon.bus.client import StationClient
from tokenstation.daemon.bus.interface import StationInterface
from tokenstation.daemon.bus.names import BUS_NAME, OBJECT_PATH
from tokenstation.daemon.config import Config, DefaultSettings
from tokenstation.daemon.events import (
    BurnOffered,
    Event,
    OperationKind,
    ReaderChange,
    TokenMeasured,
    TokenUpdated,
)
from tokenstation.daemon.pcsc import ReaderEvent
from tokenstation.daemon.simulator.molto2 import SimulatedMolto2
from tokenstation.daemon.token import molto2 as m
from tokenstation.daemon.token.secret import Secret
from tokenstation.tray.model import TrayModel, TrayState

from helpers import DirectConnection
from station_rig import C302, READER, ProvRig

MOLTO2_READER = "TOKEN2 Molto2 [CCID Interface] 00 00"
MOLTO2 = "58000001"
URI = "otpauth://totp/Bitbucket:alice?secret=JBSWY3DPEHPK3PXP&issuer=Bitbucket"


class BusRig(ProvRig):
    """A station with its features on the private bus, and a tray model fed by signals."""

    def __init__(self, tmp: Path, offset: float) -> None:
        super().__init__(tmp, Config(token_defaults=DefaultSettings(confirmed=True)))
        self.new_token(C302, offset)
        self.tray = TrayModel()
        #: Every Present property value sent in PropertiesChanged, in order.
        self.present_changes: list[list[dict[str, Any]]] = []
        self.seen: list[Event] = []
        self.server: Any = None
        self.client: StationClient | None = None

    async def connect(self, address: str) -> StationClient:
        self.server = await dbusio.connect("session", address)
        self.server.export(OBJECT_PATH, StationInterface(self.station, self.sync, self.prov))
        await self.server.request_name(BUS_NAME, dbusio.NameFlag.DO_NOT_QUEUE)
        client = self.client = await StationClient.connect("session", address, require=False)
        self.tray.load(await client.status(), await client.present(), [])

        def on_event(event: Event) -> None:
            self.seen.append(event)
            self.tray.apply(event)

        await client.subscribe_events(on_event)
        await dbusio.add_match(
            client.bus,
            "type='signal',interface='org.freedesktop.DBus.Properties',"
            f"member='PropertiesChanged',path='{OBJECT_PATH}'",
        )

        def on_properties(msg: Any) -> None:
            if msg.member == "PropertiesChanged" and "Present" in msg.body[1]:
                self.present_changes.append(dbusio.unpack(msg.body[1]["Present"]))

        client.bus.add_message_handler(on_properties)
        return client

    async def arrived(self, predicate: Callable[[Event], bool], what: str) -> Event:
        """The first signal decoded on the client's side that fits."""
        for _ in range(500):
            for e in self.seen:
                if predicate(e):
                    return e
            await asyncio.sleep(0.01)
        raise AssertionError(f"no {what} in {[type(e).__name__ for e in self.seen]}")

    async def after(self, write: Callable[[], Awaitable[Any]], kind: OperationKind) -> TokenUpdated:
        """Carry out a write; the TokenUpdated that follows it, once the tray has it."""
        self.seen.clear()
        await write()
        event = await self.arrived(lambda e: isinstance(e, TokenUpdated), "TokenUpdated")
        assert isinstance(event, TokenUpdated) and event.after == kind
        return event

    async def present_changed(self, predicate: Callable[[dict[str, Any]], bool]) -> None:
        """Wait (up to 5 s) for a PropertiesChanged whose Present's one token fits: it
        follows the write's signals within the interface's settling time."""
        for _ in range(500):
            last = self.present_changes[-1] if self.present_changes else []
            if len(last) == 1 and predicate(last[0]):
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"no fitting PropertiesChanged: {self.present_changes[-1:]}")

    def lines(self) -> list[str]:
        return [e.text for e in self.tray.menu()]

    async def add_job(self, text: str) -> int:
        return await self.add("alice.txt", text)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
        if self.server is not None:
            await dbusio.disconnect(self.server)
        await super().close()
        self.queue.close()
        self.store.close()


def test_a_sync_and_a_burn_of_a_single_profile_token_show_in_the_tray_and_the_daemon(
    private_bus: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        rig = BusRig(tmp_path, 37.4)
        client = await rig.connect(private_bus)
        try:
            # A burn onto a token 37.4 s fast (attended: BurnOffered, then BurnJob).
            job = await rig.add_job(URI)
            rig.place()
            await rig.arrived(lambda e: isinstance(e, BurnOffered), "BurnOffered")
            assert f"{C302} C302-i: 37.4 s fast" in rig.lines()
            assert f"Sync clock of {C302}" in rig.lines()
            assert rig.tray.state() == TrayState.DRIFT
            await rig.after(lambda: client.burn_job(job, C302), OperationKind.BURN)
            assert f"{C302} C302-i: in time" in rig.lines()
            assert not any(line.startswith("Sync clock") for line in rig.lines())
            assert rig.tray.state() == TrayState.OK
            [present] = await client.present()
            assert present["verdict"] == "in-time" and present["sync_offered"] is False

            # The token drifts, is placed again, and is synced through SyncToken.
            rig.remove()
            rig.token.clock._anchor_token += 12.5  # the token gained 12.5 s meanwhile
            rig.seen.clear()
            rig.place()
            await rig.arrived(lambda e: isinstance(e, TokenMeasured), "TokenMeasured")
            assert f"{C302} C302-i: 12.5 s fast" in rig.lines()
            updated = await rig.after(lambda: client.sync(C302), OperationKind.SYNC)
            assert updated.drift_words == "in time" and updated.sync_offered is False
            assert f"{C302} C302-i: in time" in rig.lines()
            assert not any(line.startswith("Sync clock") for line in rig.lines())
            assert rig.tray.state() == TrayState.OK
            [present] = await client.present()
            assert present["drift_words"] == "in time" and present["sync_offered"] is False
            assert present["reader"] == READER
            await rig.present_changed(  # PropertiesChanged followed the write
                lambda c: c.get("drift_words") == "in time" and c.get("sync_offered") is False
            )
        finally:
            await rig.close()

    asyncio.run(scenario())


def test_a_molto2_profile_sync_burn_and_delete_show_in_the_tray_and_the_daemon(
    private_bus: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        rig = BusRig(tmp_path, 0.0)
        device = SimulatedMolto2(host_time=rig.clock.time, clock_offset_s=30.0)
        for i in (0, 1):
            device.preload(i, Secret(f"kept-{i}".encode() * 2), m.ProfileSettings(), f"P{i}")
        rig.device = device
        rig.conn = DirectConnection(device, rig.clock)  # type: ignore[arg-type]
        client = await rig.connect(private_bus)

        def molto2_line() -> str:
            return next(line for line in rig.lines() if line.startswith(MOLTO2))

        try:
            rig.station.on_reader_event(ReaderEvent(ReaderChange.READER_ADDED, MOLTO2_READER))
            rig.station.on_reader_event(
                ReaderEvent(ReaderChange.CARD_INSERTED, MOLTO2_READER, b"\x3b\x80")
            )
            await rig.arrived(lambda e: isinstance(e, TokenMeasured), "TokenMeasured")
            assert "2 of 100 profiles used" in molto2_line() and "30 s fast" in molto2_line()
            assert f"Sync clock of {MOLTO2}" in rig.lines()

            updated = await rig.after(lambda: client.sync(MOLTO2), OperationKind.SYNC)
            assert updated.sync_offered is False and updated.verdict == "in-time"
            assert "in time" in molto2_line()
            assert f"Sync clock of {MOLTO2}" not in rig.lines()
            assert rig.tray.state() == TrayState.OK

            job = await rig.add_job(URI)
            await rig.after(lambda: client.burn_job(job, MOLTO2), OperationKind.BURN)
            assert "3 of 100 profiles used" in molto2_line() and "in time" in molto2_line()
            [present] = await client.present()
            assert present["profiles_used"] == 3 and present["next_free_profile"] == 3

            await rig.after(lambda: client.delete_profile(MOLTO2, 0), OperationKind.DELETE)
            assert "2 of 100 profiles used" in molto2_line()
            [present] = await client.present()
            assert present["profiles_used"] == 2 and present["next_free_profile"] == 0
            await rig.present_changed(
                lambda c: c["profiles_used"] == 2 and c["next_free_profile"] == 0
            )
        finally:
            with contextlib.suppress(Exception):
                await rig.close()

    asyncio.run(scenario())
