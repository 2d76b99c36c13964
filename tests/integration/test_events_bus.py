"""Every event kind through a real private D-Bus into the tray model, field for field.

The daemon side is the real StationInterface (over a Station and its features, with no
reader: the events are published directly); the client side is the real StationClient
decoding signals back into the same typed events the tray consumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from tokenstation.daemon.bus import dbusio
from tokenstation.daemon.bus.client import StationClient
from tokenstation.daemon.bus.interface import StationInterface
from tokenstation.daemon.bus.names import OBJECT_PATH
from tokenstation.daemon.clocksync.sync import ClockSync
from tokenstation.daemon.config import Config
from tokenstation.daemon.events import (
    SIGNALS,
    BurnDone,
    BurnFailed,
    BurnOffered,
    BurnOutcome,
    CardIgnored,
    CardKind,
    DriftDetected,
    Event,
    Fault,
    FaultKind,
    FileTaken,
    FileVerdict,
    GenerateProgress,
    JobState,
    JobView,
    OperationKind,
    Origin,
    Outcome,
    PresenceState,
    ProfileDeleted,
    ProfilesSynced,
    ProfileSyncView,
    ProfileView,
    QueueState,
    ReaderAdded,
    ReaderRemoved,
    ServiceBack,
    SettingsView,
    StoreReachability,
    SyncDone,
    SyncFailed,
    SyncVerdict,
    TokenMeasured,
    TokenPresented,
    TokenRemoved,
    TokenUpdated,
)
from tokenstation.daemon.provisioning.provisioner import Provisioner
from tokenstation.daemon.provisioning.queue import JobQueue
from tokenstation.daemon.registry.store import Store
from tokenstation.daemon.station import Station
from tokenstation.daemon.token.session import ClockKind
from tokenstation.tray.model import TrayModel, TrayState

from station_rig import FixedTrust

R, S, M = "Virtual PCD 00 00", "86596320000001", "C302-i"
TOKEN = {"reader": R, "serial": S, "model": M}
SETTINGS = SettingsView(hmac="SHA1", period=30, display_timeout=30)
JOB = JobView(
    id=3,
    state=JobState.QUEUED,
    label="Bitbucket:alice",
    issuer="Bitbucket",
    account="alice",
    algorithm="SHA1",
    period=30,
    source="alice.png (the QR code)",
    created=1_800_000_000.5,
    updated=1_800_000_000.5,
    secret_fingerprint="9b5f5e29",
)
PRESENCE = {
    **TOKEN,
    "state": PresenceState.TOKEN,
    "placed_at": 1_800_000_000.25,
    "programmable": True,
    "restricted_sync": False,
    "token_time": 1_800_000_037,
    "host_time": 1_800_000_000.5,
    "drift_s": 37.4,
    "drift_uncertainty_s": 0.013,
    "drift_method": "rollover",
    "drift_words": "37.4 s fast",
    "precise": True,
    "verdict": SyncVerdict.DRIFT,
    "sync_safe": True,
    "sync_offered": True,
    "needs_confirmation": False,
    "auto_sync": False,
    "reason": "",
    "settings": SETTINGS,
    "settings_source": "registry",
}
SAMPLES: list[Event] = [
    ReaderAdded(reader=R),
    TokenPresented(**{**PRESENCE, "precise": False}, event_at=1_800_000_000.2),
    TokenMeasured(**PRESENCE),
    DriftDetected(**PRESENCE),
    SyncDone(
        **TOKEN,
        origin=Origin.MANUAL,
        drift_before_s=37.4,
        drift_before_words="37.4 s fast",
        settings=SETTINGS,
        settings_source="registry",
        untrusted_clock_confirmed=False,
        clock_kind=ClockKind.PHASE_KEEPING,
        clock_writes=2,
        drift_after_s=0.004,
        drift_after_uncertainty_s=0.01,
        drift_after_words="in time",
        drift_after_bound_s=0.5,
    ),
    TokenUpdated(
        **{
            **PRESENCE,
            "drift_s": 0.004,
            "drift_words": "in time",
            "verdict": SyncVerdict.IN_TIME,
            "sync_offered": False,
        },
        after=OperationKind.SYNC,
    ),
    SyncFailed(
        **TOKEN,
        origin=Origin.AUTO,
        outcome=Outcome.REFUSED,
        message="settings unknown",
        next_step="Give them.",
    ),
    FileTaken(
        file="alice.png",
        kind="otpauth-totp",
        verdict=FileVerdict.OK,
        warnings=("a note",),
        accounts=({"label": "Bitbucket:alice", "secret_fingerprint": "9b5f5e29"},),
        queued=(JOB,),
        duplicates=(),
        seen_before=False,
    ),
    QueueState(paused=False, length=1),
    BurnOffered(**TOKEN, job=JOB, question=f"Burn Bitbucket:alice onto token {S}?"),
    BurnDone(
        **TOKEN,
        origin=Origin.MANUAL,
        job=JobView(
            **{**JOB.__dict__, "state": JobState.BURNED, "burned_serial": S, "burned_at": 1.5}
        ),
        settings=SETTINGS,
        power_cycle_required=True,
        token_time=1_800_000_001,
        expected_code="123456",
        expected_code_valid_until=1_800_000_030.0,
    ),
    BurnFailed(
        **TOKEN,
        origin=Origin.STATION,
        job=JOB,
        outcome=BurnOutcome.REQUEUED,
        message="the token left the field during WRITE SEED",
        next_step="Place it again.",
    ),
    TokenRemoved(**TOKEN),
    CardIgnored(reader=R, atr="3b80", message="not a programmable token; left alone"),
    CardIgnored(reader=R, atr="3b8f", message="a FIDO2 security key", kind=CardKind.SECURITY_KEY),
    Fault(kind=FaultKind.ERROR, reader=R, message="could not read the card", next_step="Again."),
    Fault(kind=FaultKind.SERVICE_LOST, message="the PC/SC service is gone", next_step="Check."),
    ServiceBack(message="the PC/SC service is back"),
    TokenMeasured(
        **{
            **PRESENCE,
            "serial": "58000001",
            "model": "Molto2v2",
            "drift_s": 37.0,
            "drift_words": "37 s fast (whole-second clock, ±1 s)",
            "drift_method": "profile-clock",
        },
        # The family's words, as the station publishes them (families/molto2.py).
        family="molto2",
        name_words="Molto2v2 58000001",
        holds_words="3 of 100 profiles used",
        profiles=tuple(
            ProfileView(
                profile=i, title=f"P{i}", seed_present=i < 3, hmac="SHA1", digits=6, period=30
            )
            for i in range(5)
        ),
        profiles_total=100,
        profiles_used=3,
        next_free_profile=3,
    ),
    BurnOffered(
        **TOKEN,
        job=JOB,
        question="Burn Bitbucket:alice into profile 3 of Molto2 58000001?",
        profile=3,
    ),
    BurnFailed(
        **TOKEN,
        origin=Origin.STATION,
        job=JobView(**{**JOB.__dict__, "state": JobState.BURNING, "profile": 3}),
        outcome=BurnOutcome.INTERRUPTED,
        message="the Molto2 was pulled after the seed write",
    ),
    ProfilesSynced(
        **TOKEN,
        origin=Origin.MANUAL,
        synced=2,
        profiles=(
            ProfileSyncView(profile=0, title="P0", drift_before_s=3.0, drift_after_s=0.0),
            ProfileSyncView(profile=2, title="P2", drift_before_s=None, drift_after_s=None),
        ),
        drift_before_s=3.0,
        drift_after_s=0.0,
        drift_before_words="3 s fast",
        drift_after_words="in time (whole-second clock, ±1 s)",
    ),
    ProfileDeleted(
        **{**PRESENCE, "serial": "58000001", "model": "Molto2v2", "drift_method": "profile-clock"},
        profiles=tuple(
            ProfileView(
                profile=i, title=f"P{i}", seed_present=i < 2, hmac="SHA1", digits=6, period=30
            )
            for i in range(5)
        ),
        profiles_total=100,
        profiles_used=2,
        next_free_profile=2,
        profile=2,
        title="P2",
        origin=Origin.MANUAL,
    ),
    TokenRemoved(reader=R, serial="58000001", model="Molto2v2"),
    ReaderRemoved(reader=R),
    GenerateProgress(request="0123456789abcdef", done=340, total=1000),
    StoreReachability(
        reachable=False,
        since=1_800_000_100.0,
        location="postgresql tokenstation@db.example:5432/stations",
        message="the shared database is unreachable (connection lost): no burns until it "
        "is back; dropped files wait",
    ),
    StoreReachability(
        reachable=True,
        since=1_800_000_160.0,
        location="postgresql tokenstation@db.example:5432/stations",
        message="the shared database is reachable again",
    ),
]


def test_every_event_kind_round_trips_through_dbus_into_the_tray(
    private_bus: str, tmp_path: Path
) -> None:
    assert {type(e) for e in SAMPLES} == set(SIGNALS)  # every kind, none forgotten

    async def scenario() -> list[Event]:
        loop = asyncio.get_running_loop()
        cfg = Config()
        store = Store(tmp_path / "registry.sqlite3")
        queue = JobQueue(tmp_path / "queue.sqlite3")

        def no_reader(_reader: str) -> contextlib.nullcontext[None]:
            raise AssertionError("no card is touched in this test")

        station = Station(cfg, store, FixedTrust(True), no_reader)  # type: ignore[arg-type]
        prov = Provisioner(
            station,
            queue,
            cfg,
            drop_folder=tmp_path / "drop",
            log_path=tmp_path / "log.csv",
            loop=loop,
        )
        server = await dbusio.connect("session", private_bus)
        server.export(OBJECT_PATH, StationInterface(station, ClockSync(station), prov))
        client = await StationClient.connect("session", private_bus, require=False)
        received: list[Event] = []
        await client.subscribe_events(received.append)
        try:
            for event in SAMPLES:
                station.publish(event)
            for _ in range(500):
                if len(received) >= len(SAMPLES):
                    break
                await asyncio.sleep(0.01)
            return received
        finally:
            await client.close()
            await dbusio.disconnect(server)
            prov.close()
            queue.close()
            store.close()

    received = asyncio.run(scenario())
    assert received == SAMPLES  # every field, typed, in order

    tray = TrayModel()
    tray.load({"paused": False, "pcsc": "running", "drop_folder": "/x/drop"}, [], [])
    bubbles = {type(e).__name__: tray.apply(e) for e in received[:4]}
    assert tray.state() == TrayState.DRIFT
    [measured] = bubbles["TokenMeasured"]
    assert "37.4 s fast" in measured.body and measured.commands["sync"].serial == S
    shown = [b for e in received[4:5] for b in tray.apply(e)]
    tray.apply(received[5])  # TokenUpdated after the sync: the line as it is now
    assert tray.state() == TrayState.OK
    lines = [e.text for e in tray.menu()]
    assert f"{S} {M}: in time" in lines and not any(t.startswith("Sync clock") for t in lines)
    shown += [b for e in received[6:] for b in tray.apply(e)]
    texts = " | ".join(f"{b.summary}: {b.body}" for b in shown)
    assert "It was 37.4 s fast; now in time." in texts
    assert "Queued Bitbucket:alice from alice.png" in texts
    assert "it should show 123 456" in texts
    assert "The job is queued again." in texts
    assert "PC/SC service lost" in texts
    assert "A security key, not a token: a FIDO2 security key" in texts
    assert (
        "Molto2v2 58000001: 3 of 100 profiles used, 37 s fast (whole-second clock, ±1 s)." in texts
    )
    assert "Burn Bitbucket:alice into profile 3 of Molto2 58000001?" in texts
    assert "Plug it in again to finish this job." in texts
    assert (
        "2 profiles holding a seed: the largest drift was 3 s fast; now in time "
        "(whole-second clock, ±1 s)." in texts
    )
    assert tray.state() == TrayState.IDLE  # the service came back; the reader went away
    assert "Shared database unreachable: The shared database is unreachable" in texts
    assert "Shared database back: The shared database is reachable again." in texts


def test_the_tray_keeps_a_line_while_the_shared_database_is_away_and_counts_every_station() -> None:
    down, back = SAMPLES[-2:]
    tray = TrayModel()
    tray.load({"paused": False, "pcsc": "running", "queue_length": 0}, [], [])
    [bubble] = tray.apply(down)
    assert bubble.urgency == 2
    line = tray.menu()[0].text
    at = time.strftime("%H:%M", time.localtime(1_800_000_100.0))
    assert line == f"Shared database unreachable since {at}: drops wait, no burns"
    assert line in tray.tooltip()
    assert tray.apply(down) == []  # said once
    # Jobs queued at other stations: the daemon's count, and the jobs to list again.
    tray.apply(QueueState(paused=False, length=3))
    assert "3 job(s) queued" in tray.tooltip() and tray.jobs_stale()
    tray.apply(back)
    assert not any(e.text.startswith("Shared database unreachable") for e in tray.menu())
    assert "unreachable" not in tray.tooltip()
    # A tray started while the database is away shows it from the status.
    late = TrayModel()
    late.load({"pcsc": "running", "store": {"reachable": False, "since": 1_800_000_100.0}}, [], [])
    assert late.menu()[0].text == line
