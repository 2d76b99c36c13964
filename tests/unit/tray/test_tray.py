"""The tray's model (state, tooltip, menu, bubbles) and its icons, without a display."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tokenstation.daemon.events import (
    BurnDone,
    BurnOffered,
    CardIgnored,
    CardKind,
    Fault,
    FaultKind,
    FileTaken,
    FileVerdict,
    JobState,
    JobView,
    Origin,
    Outcome,
    PresenceState,
    QueueState,
    ServiceBack,
    SettingsView,
    SyncDone,
    SyncFailed,
    SyncVerdict,
    TokenMeasured,
    from_signal,
)
from tokenstation.tray import icons
from tokenstation.tray.model import (
    FILE_BURST_S,
    Command,
    NotifyChoices,
    TrayModel,
    TrayState,
)

READER = "Virtual PCD 00 00"
SERIAL = "86596320000001"


def measured(**over: Any) -> TokenMeasured:
    p: dict[str, Any] = {
        "reader": READER,
        "serial": SERIAL,
        "model": "C302-i",
        "state": PresenceState.TOKEN,
        "placed_at": 1_800_000_000.0,
        "drift_s": 37.4,
        "drift_words": "37.4 s fast",
        "drift_uncertainty_s": 0.013,
        "precise": True,
        "verdict": SyncVerdict.DRIFT,
        "sync_safe": True,
        "sync_offered": True,
        "needs_confirmation": False,
        "reason": "",
    }
    p.update(over)
    return TokenMeasured(**p)


TOKEN = {"reader": READER, "serial": SERIAL, "model": "C302-i"}
SETTINGS = SettingsView(hmac="SHA1", period=30, display_timeout=30)


def connected(model: TrayModel) -> TrayModel:
    model.load({"paused": False, "pcsc": "running", "drop_folder": "/x/drop"}, [], [])
    return model


def test_a_drifted_safe_token_gets_a_sync_button_and_a_menu_entry() -> None:
    m = connected(TrayModel())
    [b] = m.apply(measured())
    assert b.key == f"token:{SERIAL}" and b.summary == f"Token {SERIAL} (C302-i)"
    assert "37.4 s fast" in b.body
    assert b.actions == (("sync", "Sync clock"),)
    assert b.commands["sync"] == Command("sync", SERIAL)
    assert m.state() == TrayState.DRIFT
    assert m.tooltip() == f"tokenstation: {SERIAL} 37.4 s fast"
    entries = m.menu()
    sync = [e for e in entries if e.command == Command("sync", SERIAL)]
    assert sync and sync[0].text == f"Sync clock of {SERIAL}" and sync[0].default


def test_without_buttons_the_bubble_points_to_the_menu() -> None:
    m = connected(TrayModel(actions=False))
    [b] = m.apply(measured())
    assert b.actions == () and f"'Sync clock of {SERIAL}' in the tray menu" in b.body


def test_without_buttons_or_an_icon_the_bubble_gives_the_command() -> None:
    """`tray --no-icon` (or no tray on the display) with a server that shows no buttons:
    no menu to point to, so the bubble names the command (issue: the first hour)."""
    m = connected(TrayModel(actions=False))
    m.menu_shown = False
    [b] = m.apply(measured())
    assert "tray menu" not in b.body and f"`tokenstation sync --serial {SERIAL}`" in b.body


def test_restricted_and_unknown_settings_say_why_and_offer_nothing() -> None:
    m = connected(TrayModel())
    reason = "setting the clock of a OTPC-P2-i erases its seed: it needs a re-burn"
    [b] = m.apply(measured(model="OTPC-P2-i", sync_safe=False, sync_offered=False, reason=reason))
    assert b.actions == () and "Setting the clock of a OTPC-P2-i erases its seed" in b.body
    assert not [e for e in m.menu() if e.command and e.command.kind == "sync"]


def test_sync_result_replaces_the_bubble_and_failures_are_urgent() -> None:
    m = connected(TrayModel())
    m.apply(measured())
    [done] = m.apply(
        SyncDone(
            **TOKEN,
            origin=Origin.MANUAL,
            drift_before_s=37.4,
            drift_before_words="37.4 s fast",
            drift_after_words="in time",
            settings=SETTINGS,
            settings_source="registry",
            untrusted_clock_confirmed=False,
        )
    )
    assert done.key == f"token:{SERIAL}" and done.summary == f"Clock set: token {SERIAL}"
    assert done.body == "It was 37.4 s fast; now in time."
    [failed] = m.apply(
        SyncFailed(
            **TOKEN,
            origin=Origin.MANUAL,
            outcome=Outcome.FAILED,
            message="the token left the field",
            next_step="Place it again.",
        )
    )
    assert failed.urgency == 2 and failed.body == "The token left the field. Place it again."


def test_in_time_tokens_respect_the_notify_choice() -> None:
    quiet = connected(TrayModel(NotifyChoices(in_time=False)))
    assert quiet.apply(measured(verdict=SyncVerdict.IN_TIME, sync_offered=False)) == []
    assert quiet.state() == TrayState.OK


def test_queue_events_and_burn_offer() -> None:
    m = connected(TrayModel())
    job = JobView(
        id=7,
        label="Bitbucket:alice",
        state=JobState.QUEUED,
        secret_fingerprint="9b5f5e29",
        algorithm="SHA1",
        period=30,
        source="bitbucket.png (the QR code)",
    )
    [taken] = m.apply(
        FileTaken(
            time=1000.0,
            file="bitbucket.png",
            verdict=FileVerdict.OK,
            kind="otpauth-totp",
            queued=(job,),
        )
    )
    assert "Queued Bitbucket:alice from bitbucket.png" in taken.body
    assert any(e.command == Command("remove", job_id=7) for e in m.menu())
    [offer] = m.apply(
        BurnOffered(**TOKEN, job=job, question=f"Burn Bitbucket:alice onto token {SERIAL}?")
    )
    assert offer.summary == f"Burn Bitbucket:alice onto token {SERIAL}?"
    assert offer.actions == (("burn", "Burn"), ("skip", "Skip"))
    assert offer.commands["burn"] == Command("burn", SERIAL, 7)
    [done] = m.apply(
        BurnDone(
            **TOKEN,
            origin=Origin.MANUAL,
            job=JobView(**{**job.__dict__, "state": JobState.BURNED}),
            settings=SETTINGS,
            power_cycle_required=True,
            token_time=1_800_000_000,
            expected_code="123456",
            expected_code_valid_until=1_800_000_030,
        )
    )
    assert "it should show 123 456" in done.body and "9b5f5e29" in done.body
    burned = BurnDone(
        **TOKEN,
        origin=Origin.MANUAL,
        job=JobView(**{**job.__dict__, "id": 8, "state": JobState.BURNED}),
        settings=SETTINGS,
        power_cycle_required=True,
        token_time=1_800_000_000,
    )
    [plain] = m.apply(burned)  # as on the system bus: no code broadcast
    assert "should show" not in plain.body
    reply = replace(burned, expected_code="654321", expected_code_valid_until=1_800_000_060)
    [coded] = m.burn_result(reply)  # the reply to this tray's own BurnJob carries it
    assert coded.key == plain.key and "it should show 654 321" in coded.body
    assert m.burn_result(reply) == [] and m.burn_result(replace(reply, job=job)) == []
    [refused] = m.apply(
        FileTaken(
            time=1000.0 + FILE_BURST_S + 1,  # not in the same burst as bitbucket.png
            file="x.png",
            verdict=FileVerdict.REJECTED,
            kind="url",
            reason="a https:// link, not an enrolment code",
            moved_to="/x/failed/x.png",
        )
    )
    assert refused.summary == "File refused: x.png" and "moved to failed/" in refused.body


def test_files_dropped_together_share_one_bubble_that_counts_them() -> None:
    """A folder of QR codes dropped at once is one notification (the first file's,
    replaced as the burst grows), not one per file; a file after a pause has its own."""
    m = connected(TrayModel())

    def job(i: int) -> JobView:
        return JobView(
            id=i,
            label=f"Corp:user{i}",
            state=JobState.QUEUED,
            secret_fingerprint=f"{i:08x}",
            algorithm="SHA1",
            period=30,
            source=f"user{i}.png (the QR code)",
        )

    def taken(i: int, at: float) -> FileTaken:
        return FileTaken(
            time=at,
            file=f"user{i}.png",
            verdict=FileVerdict.OK,
            kind="otpauth-totp",
            queued=(job(i),),
        )

    [first] = m.apply(taken(1, 100.0))
    assert first.key == "file:user1.png" and first.summary == "QR file taken"
    bubbles = [b for i in range(2, 50) for b in m.apply(taken(i, 100.0 + i * 0.05))]
    bubbles += m.apply(
        FileTaken(
            time=103.0,
            file="notes.doc",
            verdict=FileVerdict.ERROR,
            kind="unsupported-file",
            reason="a .doc file is not an enrolment file",
            moved_to="/x/failed/notes.doc",
        )
    )
    assert {b.key for b in bubbles} == {"file:user1.png"}  # the same bubble, replaced
    last = bubbles[-1]
    assert last.summary == "50 files taken, 1 refused"
    assert last.body.startswith("Queued 49 accounts from 49 files; place a token to burn them.")
    assert "1 file refused and moved to failed/" in last.body
    assert "(the last: notes.doc: a .doc file is not an enrolment file)." in last.body
    assert last.urgency == 2  # a refusal among them is shown as one
    assert len([j for j in m.jobs if j.state == JobState.QUEUED]) == 49
    [alone] = m.apply(taken(99, 103.0 + FILE_BURST_S + 0.5))  # after a pause: its own
    assert alone.key == "file:user99.png" and "Queued Corp:user99 from user99.png" in alone.body


def test_a_security_key_is_named_in_its_bubble_other_cards_stay_not_a_token() -> None:
    m = connected(TrayModel())  # non-token cards are not shown by default; a key is named
    words = (
        "this card is a FIDO2 security key (it holds passkeys, not a TOTP seed): register it "
        "with the service in a browser"
    )
    key = from_signal(
        "CardIgnored", {"reader": READER, "atr": "3b8f", "message": words, "kind": "security-key"}
    )
    assert key is not None
    [b] = m.apply(key)
    assert b.summary == "A security key, not a token" and b.body == words
    other = CardIgnored(
        reader=READER,
        atr="3b8f",
        message="not a programmable token; left alone",
        kind=CardKind.OTHER,
    )
    assert m.apply(other) == []
    m = connected(TrayModel(choices=NotifyChoices(non_token_cards=True)))
    [b] = m.apply(other)
    assert b.summary == "Not a programmable token"


def test_states_and_the_daemon_going_away() -> None:
    m = TrayModel()
    assert m.state() == TrayState.NO_DAEMON
    assert m.menu()[0].text == "Daemon not running"
    connected(m)
    assert m.state() == TrayState.IDLE
    m.apply(QueueState(paused=True, length=0))
    assert m.state() == TrayState.PAUSED
    assert any(e.command == Command("resume") for e in m.menu())
    m.apply(Fault(kind=FaultKind.SERVICE_LOST, message="the PC/SC service is gone"))
    assert m.state() == TrayState.ERROR
    m.apply(ServiceBack(message="the PC/SC service is back"))
    m.set_burning(SERIAL, True)
    assert m.state() == TrayState.BURNING
    [gone] = m.disconnected()
    assert gone.urgency == 2 and m.state() == TrayState.NO_DAEMON
    assert len(m.recent) <= 10


@pytest.mark.parametrize("size", [16, 22, 24, 32, 48])
def test_every_state_has_its_own_icon_at_every_size(size: int) -> None:
    images = {s: icons.draw(s, size) for s in TrayState}
    assert all(im.size == (size, size) and im.mode == "RGBA" for im in images.values())
    assert len({im.tobytes() for im in images.values()}) == len(TrayState)
    for im in images.values():  # opaque body, transparent corners
        assert im.getpixel((size // 2, size // 2))[3] > 0
        assert im.getpixel((0, 0))[3] == 0


def test_the_start_up_line_says_where_events_go_in_each_combination() -> None:
    """Never "notifications still work" without a notification server, never "the tray
    menu" without an icon (issue: the first hour)."""
    import logging

    from tokenstation.tray.app import NO_ICON_ASKED, where_events_go

    both = where_events_go("", "")
    assert both == (logging.INFO, "events go to notifications and the tray menu")
    level, text = where_events_go("", NO_ICON_ASKED)
    assert level == logging.INFO and "tray menu" not in text and "notifications" in text
    level, text = where_events_go("", "no display")
    assert level == logging.WARNING and "no display" in text and "tray menu" not in text
    level, text = where_events_go("org.freedesktop.Notifications is not there", "")
    assert "tray menu" in text and "go to notifications" not in text
    level, text = where_events_go("none answers", "no display")
    assert level == logging.WARNING and "log only" in text
    assert "notifications still work" not in text and "tray menu" not in text
