"""The daemon on the real stack: pcscd + vpcd + simulated tokens, a private dbus-daemon,
the real systemd-timedated (which reports this machine's clock as unsynchronised)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tokenstation.daemon.bus.client import DaemonError
from tokenstation.daemon.simulator.stack import PcscStack
from tokenstation.daemon.token import commands
from tokenstation.daemon.token.errors import SECURITY_KEY_WORDS

from conftest import BusWatcher, DaemonProc, SimToken, wait_until

pytestmark = pytest.mark.pcsc

C302 = "86596320000001"
P2 = "86596220000007"
CONFIRMED_DEFAULTS = """
[token_defaults]
algorithm = "sha1"
period = 30
display_timeout = 30
confirmed = true
"""
Start = Callable[..., tuple[DaemonProc, BusWatcher]]
Cli = Callable[..., subprocess.CompletedProcess[str]]


def test_drifted_token_is_reported_and_synced_over_dbus_after_confirmation(
    start_daemon: Start, simulator: Callable[..., SimToken], cli_bus: Cli
) -> None:
    # Auto-sync is on, but timedated says the host clock is not synchronised.
    daemon, bus = start_daemon("--auto-sync", config=CONFIRMED_DEFAULTS)
    sim = simulator("--serial", C302, "--clock-offset", "37.4", "--seed", "JBSWY3DPEHPK3PXP")
    seed_before = sim.fresh_state()["seed_fingerprint"]

    presented = bus.expect("TokenPresented", serial=C302)
    assert presented["model"] == "C302-i"
    assert presented["drift_s"] == pytest.approx(37.4, abs=1.0)  # whole-second first read
    measured = bus.expect("DriftDetected", serial=C302)
    assert measured["drift_s"] == pytest.approx(37.4, abs=0.1)
    assert measured["drift_words"] == "37.4 s fast"
    assert measured["sync_offered"] is True
    assert measured["needs_confirmation"] is True
    assert measured["auto_sync"] is False
    assert "host clock is not trusted" in measured["reason"]

    time.sleep(0.5)  # no auto-sync may follow
    assert sim.fresh_state()["config_writes"] == 0
    assert bus.count("SyncDone") == 0

    with pytest.raises(DaemonError) as refused:
        bus.run(bus.client.sync(C302))
    assert refused.value.kind == "needs-confirmation"
    assert sim.fresh_state()["config_writes"] == 0

    result = bus.run(bus.client.sync(C302, confirm_untrusted_clock=True))
    assert result["drift_before_words"] == "37.4 s fast"
    assert abs(result["drift_after_s"]) < 0.1
    done = bus.expect("SyncDone", serial=C302)
    assert done["origin"] == "manual" and done["settings_source"] == "configured defaults"
    state = sim.fresh_state()
    assert state["config_writes"] == 1
    assert abs(state["clock_offset_s"]) < 0.1  # the simulator's clock is right
    assert state["seed_fingerprint"] == seed_before  # an unrestricted model keeps its seed

    status = json.loads(cli_bus("status", "--json").stdout)
    assert status["tokens_present"] == 1
    assert status["host_clock"]["trusted"] is False
    [token] = [p for p in status["present"] if p.get("serial") == C302]
    assert abs(token["drift_s"]) < 0.1 and token["verdict"] == "in-time"

    listing = json.loads(cli_bus("tokens", "--json").stdout)["tokens"]
    [entry] = [t for t in listing if t["serial"] == C302]
    assert entry["settings_known"] is True
    assert entry["last_operation"]["kind"] == "sync"
    assert entry["last_operation"]["outcome"] == "ok"
    assert daemon.proc.poll() is None


def test_auto_sync_on_a_trusted_clock_sets_the_token_without_a_click(
    start_daemon: Start, simulator: Callable[..., SimToken]
) -> None:
    config = CONFIRMED_DEFAULTS + '\n[clock]\ntrust = "assume-synchronised"\n[sync]\nauto = true\n'
    _daemon, bus = start_daemon(config=config)
    sim = simulator("--serial", C302, "--clock-offset", "-9.6")
    done = bus.expect("SyncDone", serial=C302, timeout=10)
    assert done["origin"] == "auto"
    assert done["drift_before_words"] == "9.6 s slow"
    assert abs(sim.fresh_state()["clock_offset_s"]) < 0.1


def test_restricted_model_gets_no_sync_and_the_reason(
    start_daemon: Start, simulator: Callable[..., SimToken]
) -> None:
    config = CONFIRMED_DEFAULTS + '\n[clock]\ntrust = "assume-synchronised"\n[sync]\nauto = true\n'
    _daemon, bus = start_daemon(config=config)
    sim = simulator("--serial", P2, "--clock-offset", "-12.8", "--seed", "JBSWY3DPEHPK3PXP")
    measured = bus.expect("DriftDetected", serial=P2)
    assert measured["model"] == "OTPC-P2-i"
    assert measured["drift_words"] == "12.8 s slow"
    assert measured["sync_offered"] is False and measured["sync_safe"] is False
    assert "erases its seed" in measured["reason"]
    with pytest.raises(DaemonError) as refused:
        bus.run(bus.client.sync(P2, confirm_untrusted_clock=True))
    assert refused.value.kind == "refused"
    assert "erases its seed" in refused.value.text
    state = sim.fresh_state()
    assert state["config_writes"] == 0 and state["seed_present"] is True
    assert bus.expect("SyncFailed", serial=P2)["outcome"] == "refused"


def test_unknown_settings_are_never_guessed_and_the_cli_can_supply_them(
    start_daemon: Start, simulator: Callable[..., SimToken], cli_bus: Cli
) -> None:
    _daemon, bus = start_daemon("--auto-sync", "--clock-trust", "assume-synchronised")
    sim = simulator("--serial", C302, "--clock-offset", "5.3")
    measured = bus.expect("DriftDetected", serial=C302)
    assert measured["sync_offered"] is False and measured["auto_sync"] is False
    assert "HMAC, time step and display timeout are unknown" in measured["reason"]
    with pytest.raises(DaemonError):
        bus.run(bus.client.sync(C302))
    assert sim.fresh_state()["config_writes"] == 0

    # The operator says what the token was burned with: the CLI goes through the daemon.
    out = cli_bus(
        "sync", "--yes", "--algorithm", "sha1", "--period", "30", "--display-timeout", "30"
    )
    assert out.returncode == 0, out.stderr
    assert "through the daemon" in out.stdout and "5.3 s fast" in out.stdout
    assert abs(sim.fresh_state()["clock_offset_s"]) < 0.1

    # From now on the registry knows them: the next drift is offered for sync.
    sim.power_cycle()
    again = bus.expect("TokenMeasured", serial=C302, sync_safe=True)
    assert again["settings_source"] == "registry"


def test_a_card_that_is_not_a_token_is_left_alone_without_a_popup_storm(
    start_daemon: Start, simulator: Callable[..., SimToken], pcsc_stack: PcscStack
) -> None:
    daemon, bus = start_daemon()
    card = simulator("--foreign-card")
    ignored = bus.expect("CardIgnored", reader=pcsc_stack.reader_name(0))
    assert "not a programmable token" in ignored["message"]
    wait_until(lambda: card.state()["apdus"] >= 1, 3.0)
    card.stop()
    card = simulator("--foreign-card")
    wait_until(lambda: card.state()["apdus"] >= 1, 5.0, "the second look at the card")
    time.sleep(0.3)
    assert bus.count("CardIgnored") == 1  # announced once, not on every placement
    # One GET INFO and the two read-only applet SELECTs, nothing else sent to it.
    assert card.state()["received"] == [
        commands.GET_INFO.hex(),
        commands.select_aid(commands.FIDO_AID).hex(),
        commands.select_aid(commands.YKOATH_AID).hex(),
    ]
    assert bus.count("TokenPresented") == 0
    assert daemon.proc.poll() is None


def test_a_fido_key_is_named_once_over_dbus_and_never_written(
    start_daemon: Start, simulator: Callable[..., SimToken], pcsc_stack: PcscStack, cli_bus: Cli
) -> None:
    daemon, bus = start_daemon()
    card = simulator("--foreign-card", "fido")
    ignored = bus.expect("CardIgnored", reader=pcsc_stack.reader_name(0))
    assert ignored["kind"] == "security-key"
    assert ignored["message"].count(SECURITY_KEY_WORDS) == 1
    wait_until(lambda: len(card.state()["received"]) >= 3, 3.0, "the probe")
    time.sleep(0.3)
    sent = [bytes.fromhex(a) for a in card.state()["received"]]
    assert all(a[:2] == b"\x00\xa4" for a in sent[1:])  # read-only SELECTs only
    assert not any(a[0] == 0x84 or a[1] in (0x4B, 0xCE, 0xD4, 0xC5) for a in sent)
    present = bus.run(bus.client.present())
    assert present[0]["state"] == "not-a-token"
    assert bus.count("CardIgnored") == 1 and daemon.proc.poll() is None
    status = cli_bus("status")
    assert status.stdout.count(SECURITY_KEY_WORDS) == 1


@pytest.mark.parametrize("profile", ["token2", "opent2otp"])
def test_the_daemon_remembers_a_phase_keeping_clock_so_the_next_sync_takes_one_write(
    start_daemon: Start, simulator: Callable[..., SimToken], profile: str
) -> None:
    config = CONFIRMED_DEFAULTS + '\n[clock]\ntrust = "assume-synchronised"\n'
    _daemon, bus = start_daemon(config=config)
    sim = simulator(
        "--serial", C302, "--clock-offset", "12.8", "--clock-phase", "keep",
        "--firmware-profile", profile,
    )  # fmt: skip
    bus.expect("TokenMeasured", serial=C302)
    first = bus.run(bus.client.sync(C302))
    assert first["clock_kind"] == "phase-keeping" and first["clock_writes"] == 2
    assert first["drift_after_bound_s"] == 0.5
    assert abs(sim.fresh_state()["clock_offset_s"] + 0.2) < 0.1
    # The registry now knows the kind: no second write is needed.
    second = bus.run(bus.client.sync(C302))
    assert second["clock_kind"] == "phase-keeping" and second["clock_writes"] == 1
    assert abs(sim.fresh_state()["clock_offset_s"]) <= 0.5
    assert sim.fresh_state()["config_writes"] == 3


def test_daemon_survives_pcscd_restart_and_reader_loss(
    start_daemon: Start, simulator: Callable[..., SimToken], pcsc_stack: PcscStack
) -> None:
    daemon, bus = start_daemon()
    bus.expect("ReaderAdded", reader=pcsc_stack.reader_name(1))
    try:
        # vpcd cannot hot-unplug a reader; pcscd restarting with another reader set is the
        # closest real event: the service goes away, comes back, readers come and go.
        pcsc_stack.restart(readers=4)
        lost = bus.expect("Error", kind="service-lost")
        assert "PC/SC service is gone" in lost["message"]
        bus.expect("ServiceBack", timeout=10)
        bus.expect("ReaderAdded", reader=pcsc_stack.reader_name(3), timeout=10)
        pcsc_stack.restart(readers=2)
        bus.expect("ReaderRemoved", reader=pcsc_stack.reader_name(3), timeout=10)
        wait_until(
            lambda: (
                bus.run(bus.client.status())["readers"]
                == [pcsc_stack.reader_name(0), pcsc_stack.reader_name(1)]
            ),
            10.0,
            "two readers again",
        )
        sim = simulator("--serial", C302, "--clock-offset", "3.0", slot=1)
        seen = bus.expect("TokenMeasured", serial=C302, timeout=10)
        assert seen["reader"] == sim.reader
        assert seen["drift_words"] == "3.0 s fast"
    finally:
        if pcsc_stack.readers != 2 or pcsc_stack.proc is None:
            pcsc_stack.restart(readers=2)
    assert daemon.proc.poll() is None


def test_one_instance_per_bus_and_sigterm_stops_cleanly(start_daemon: Start, cli_bus: Cli) -> None:
    daemon, _bus = start_daemon()
    second = cli_bus("daemon", timeout=20)
    assert second.returncode == 4  # refused: one daemon per bus
    assert f"another tokenstation daemon (pid {daemon.proc.pid}, session bus)" in second.stderr
    assert daemon.stop() == 0
    assert "stopping" in daemon.output()
    gone = cli_bus("status")
    assert gone.returncode == 3 and "not running" in gone.stderr


def test_tokens_lists_history_and_plots_it(
    start_daemon: Start, simulator: Callable[..., SimToken], cli_bus: Cli, tmp_path: Path
) -> None:
    daemon, bus = start_daemon()
    sim = simulator("--serial", C302, "--clock-offset", "1.2")
    bus.expect("TokenMeasured", serial=C302)
    sim.power_cycle()
    wait_until(lambda: bus.count("TokenMeasured", serial=C302) >= 2, 8.0, "second reading")
    one = json.loads(cli_bus("tokens", C302, "--json").stdout)["tokens"][0]
    assert one["measurements"] == 2
    assert [round(p["drift_s"], 1) for p in one["history"]] == [1.2, 1.2]
    png = tmp_path / "drift.png"
    out = cli_bus("tokens", "--plot", C302, str(png))
    assert out.returncode == 0, out.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Drawing is the CLI's: the daemon never loads matplotlib (nor its compiled parts).
    assert "matplotlib" not in Path(f"/proc/{daemon.proc.pid}/maps").read_text()
    # Without the daemon the registry is read directly.
    daemon.stop()
    text = cli_bus("tokens")
    assert text.returncode == 0 and C302 in text.stdout and "last drift +1.2 s" in text.stdout
