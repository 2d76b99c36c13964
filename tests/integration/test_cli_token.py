"""`tokenstation info | sync | burn` against simulated tokens through the real pcscd + vpcd."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pyotp
import pytest

from conftest import SimToken

Cli = Callable[..., subprocess.CompletedProcess[str]]
Sim = Callable[..., SimToken]

C302 = "86596320000001"
P2 = "86596220000009"
SEED_B32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # "12345678901234567890"
SEED_HEX = "3132333435363738393031323334353637383930"
SETTINGS = ["--algorithm", "sha1", "--period", "30", "--display-timeout", "30"]

pytestmark = pytest.mark.pcsc


@pytest.fixture(params=["token2", "opent2otp"])
def profile(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def simulator(simulator: Sim, profile: str) -> Sim:
    """Every test here runs against both simulator personalities."""

    def start(*args: str, slot: int = 0) -> SimToken:
        if "--foreign-card" in args:
            return simulator(*args, slot=slot)
        return simulator(*args, "--firmware-profile", profile, slot=slot)

    return start


def js(proc: subprocess.CompletedProcess[str]) -> dict[str, object]:
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


@pytest.fixture
def secret_file(tmp_path: Path) -> Callable[[str], str]:
    """A 0600 file holding one secret or URI (as users are told to keep them)."""

    def write(text: str) -> str:
        path = tmp_path / f"secret-{len(list(tmp_path.glob('secret-*')))}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
        return str(path)

    return write


def test_info_reports_serial_model_and_drift_to_a_tenth(
    cli: Cli, simulator: Sim, profile: str
) -> None:
    simulator("--serial", C302, "--clock-offset", "37.43")
    proc = cli("info", "--json")
    assert proc.returncode == 0, proc.stderr
    out = js(proc)
    for key in (
        "reader",
        "serial",
        "model",
        "programmable",
        "restricted_sync",
        "token_time",
        "host_time",
        "drift_s",
    ):
        assert key in out
    assert out["serial"] == C302 and out["model"] == "C302-i"
    assert out["info_form"] == ("untagged" if profile == "opent2otp" else "tagged")
    assert out["programmable"] is True and out["restricted_sync"] is False
    assert abs(float(out["drift_s"]) - 37.43) < 0.1  # type: ignore[arg-type]
    assert float(out["drift_uncertainty_s"]) < 0.05  # type: ignore[arg-type]


def test_info_in_words(cli: Cli, simulator: Sim, profile: str) -> None:
    simulator("--serial", P2, "--clock-offset", "-12.8")
    proc = cli("info")
    assert proc.returncode == 0, proc.stderr
    assert "OTPC-P2-i" in proc.stdout
    assert "12.8 s slow" in proc.stdout
    assert "erases the seed" in proc.stdout
    form = "untagged" if profile == "opent2otp" else "tagged"
    assert f"Answer:  {form} GET INFO" in proc.stdout


def test_sync_sets_the_clock_of_an_unrestricted_token_and_keeps_its_seed(
    cli: Cli, simulator: Sim
) -> None:
    sim = simulator("--serial", C302, "--clock-offset", "-8.6", "--seed", SEED_B32)
    proc = cli("sync", "--direct", *SETTINGS, "--yes", "--json")
    assert proc.returncode == 0, proc.stderr
    out = js(proc)
    assert out["drift_before_s"] == -8.6
    assert abs(float(out["drift_s"])) <= 0.1  # type: ignore[arg-type]
    state = sim.fresh_state()
    assert abs(state["clock_offset_s"]) < 0.05
    assert state["seed_present"] is True and state["config_writes"] == 1
    assert out["clock_kind"] == "phase-resetting" and out["clock_writes"] == 1


@pytest.mark.parametrize(
    "case",
    [
        ("reset", "-8.6", 1, "phase-resetting"),
        ("reset", "12.8", 1, "phase-resetting"),
        ("keep", "-8.6", 1, "phase-keeping"),  # kept phase .4: the best whole second
        ("keep", "12.8", 2, "phase-keeping"),  # kept phase .8: one more write, -0.2
    ],
    ids=lambda c: f"{c[0]}{c[1]}",
)
def test_sync_is_phase_aware_and_says_which_clock_it_found(
    cli: Cli, simulator: Sim, case: tuple[str, str, int, str]
) -> None:
    phase, offset, writes, kind = case
    sim = simulator(
        "--serial", C302, "--clock-offset", offset, "--seed", SEED_B32, "--clock-phase", phase
    )
    proc = cli("sync", *SETTINGS, "--yes", "--json")
    assert proc.returncode == 0, proc.stderr
    out = js(proc)
    assert out["clock_kind"] == kind and out["clock_writes"] == writes
    state = sim.fresh_state()
    bound = 0.5 if phase == "keep" else 0.1
    assert out["drift_bound_s"] == bound
    assert abs(state["clock_offset_s"]) <= bound
    # The reported drift is the token's, within its stated uncertainty (plus the rounding).
    assert abs(float(out["drift_precise_s"]) - state["clock_offset_s"]) < 0.05  # type: ignore[arg-type]
    assert state["seed_present"] is True and state["config_writes"] == writes
    text = cli("sync", *SETTINGS, "--yes", "--clock-kind", kind)
    assert text.returncode == 0, text.stderr
    assert f"Its clock is {kind}" in text.stdout and "(1 clock write)" in text.stdout


def test_a_fido_key_is_named_once_and_nothing_is_written(cli: Cli, simulator: Sim) -> None:
    card = simulator("--foreign-card", "fido")
    for args, stdin in (
        (("info",), None),
        (("sync", *SETTINGS, "--yes", "--direct"), None),
        (("burn", "--secret-file", "-", "--yes"), SEED_B32),
    ):
        proc = cli(*args, stdin=stdin)
        assert proc.returncode == 1, proc.stderr
        assert (
            proc.stderr.count(
                "a FIDO2 security key (it holds passkeys, not a TOTP seed): register it with the "
                "service in a browser"
            )
            == 1
        )
    sent = [bytes.fromhex(a) for a in card.fresh_state()["received"]]
    assert sent and all(a[:2] in (b"\x80\x41", b"\x00\xa4") for a in sent)


def test_a_plain_foreign_card_stays_not_a_programmable_token(cli: Cli, simulator: Sim) -> None:
    simulator("--foreign-card")
    proc = cli("info")
    assert proc.returncode == 1
    assert "not a programmable token" in proc.stderr and "FIDO" not in proc.stderr


def test_sync_of_a_restricted_token_is_refused_and_nothing_is_written(
    cli: Cli, simulator: Sim
) -> None:
    sim = simulator("--serial", P2, "--clock-offset", "20", "--seed", SEED_B32)
    proc = cli("sync", "--direct", *SETTINGS, "--yes")
    assert proc.returncode == 4
    assert "erases its seed" in proc.stderr and "Re-burn" in proc.stderr
    assert proc.stderr.count("erase") == 1  # said once, then what to do
    assert len(proc.stderr.strip().splitlines()) == 1
    state = sim.fresh_state()
    assert state["config_writes"] == 0 and state["seed_present"] is True
    assert abs(state["clock_offset_s"] - 20) < 0.01


def test_sync_without_the_settings_is_refused(cli: Cli, simulator: Sim) -> None:
    sim = simulator("--serial", C302, "--clock-offset", "5")
    proc = cli("sync", "--yes", "--algorithm", "sha1")
    assert proc.returncode == 2
    assert "--period, --display-timeout" in proc.stderr
    assert sim.fresh_state()["apdus"] == 0


def test_sync_without_yes_and_no_terminal_asks_for_it(cli: Cli, simulator: Sim) -> None:
    sim = simulator("--serial", C302, "--clock-offset", "5")
    proc = cli("sync", "--direct", *SETTINGS)
    assert proc.returncode == 4 and "--yes" in proc.stderr
    assert sim.fresh_state()["config_writes"] == 0


def test_burn_from_uri_then_power_cycle_shows_pyotps_code(
    cli: Cli, simulator: Sim, secret_file: Callable[[str], str]
) -> None:
    sim = simulator("--serial", P2, "--clock-offset", "-300")
    uri = f"otpauth://totp/Bitbucket:alice?secret={SEED_B32}&issuer=Bitbucket&algorithm=SHA256"
    proc = cli("burn", "--uri-file", secret_file(uri), "--yes", "--json")
    assert proc.returncode == 0, proc.stderr
    out = js(proc)
    assert out["settings"] == {"hmac": "sha256", "period": 30, "display_timeout": 30}
    assert out["power_cycle_required"] is True
    state = sim.fresh_state()
    assert state["seed_present"] and state["hmac"] == "sha256"
    assert abs(state["clock_offset_s"]) < 0.05
    sim.power_cycle()
    state = sim.fresh_state()
    totp = pyotp.TOTP(SEED_B32, digest="sha256")
    assert state["code"] == totp.at(int(state["token_time"]))
    assert out["expected_code"] in {totp.at(int(out["host_time"]))}  # type: ignore[arg-type]


def test_burn_hex_secret_shows_fingerprint_only(cli: Cli, simulator: Sim) -> None:
    sim = simulator("--serial", C302)
    proc = cli(
        "burn", "--secret-file", "-", "--yes", "--json", "--log-level", "traffic", stdin=SEED_HEX
    )
    assert proc.returncode == 0, proc.stderr
    out = js(proc)
    fp = sim.fresh_state()["seed_fingerprint"]
    assert out["secret_fingerprint"] == fp
    raw = bytes.fromhex(SEED_HEX)
    everything = proc.stdout + proc.stderr
    for form in (SEED_HEX, SEED_B32, raw.decode(), base64.b32encode(raw).decode(), raw.hex(" ")):
        assert form.lower() not in everything.lower()
    assert "84 c5 01 00 24 <36 bytes redacted>" in proc.stderr  # the trace hides the seed write
    assert "80 41 00 00 02 02 11" in proc.stderr  # the rest of the trace is there


def test_burn_refuses_what_the_token_cannot_hold_before_touching_it(
    cli: Cli, simulator: Sim, secret_file: Callable[[str], str]
) -> None:
    sim = simulator("--serial", C302)
    for uri, field in (
        (f"otpauth://hotp/x?secret={SEED_B32}&counter=1", "type"),
        (f"otpauth://totp/x?secret={SEED_B32}&algorithm=SHA512", "algorithm"),
        (f"otpauth://totp/x?secret={SEED_B32}&digits=8", "digits"),
        (f"otpauth://totp/x?secret={SEED_B32}&period=15", "period"),
        ("otpauth://totp/x?secret=" + "A" * 104, "secret"),
    ):
        proc = cli("burn", "--uri-file", secret_file(uri), "--yes")
        assert proc.returncode == 2, (uri, proc.stderr)
        assert f"{field}:" in proc.stderr
    assert sim.fresh_state()["apdus"] == 0


def test_wrong_key_fails_once_and_is_not_retried(cli: Cli, simulator: Sim) -> None:
    sim = simulator("--serial", C302, "--key", "00112233445566778899AABBCCDDEEFF")
    proc = cli("burn", "--secret-file", "-", "--yes", stdin=SEED_B32)
    assert proc.returncode == 1
    assert "do not retry" in proc.stderr.lower()
    state = sim.fresh_state()
    assert state["failed_auths"] == 1 and state["seed_present"] is False


def test_lockout_policy_locks_the_token(cli: Cli, simulator: Sim, profile: str) -> None:
    if profile == "opent2otp":
        pytest.skip("the firmware core has had no lockout since 2025")
    sim = simulator("--serial", C302, "--lockout", "1", "--key", "00" * 16)
    assert cli("burn", "--secret-file", "-", "--yes", stdin=SEED_B32).returncode == 1
    assert sim.fresh_state()["locked"] is True
    proc = cli("burn", "--secret-file", "-", "--yes", stdin=SEED_B32)
    assert proc.returncode == 1 and "locked" in proc.stderr
    state = sim.fresh_state()
    assert state["failed_auths"] == 1 and state["seed_writes"] == 0


@pytest.mark.parametrize(("drop_after", "during"), [(4, "WRITE CONFIG"), (5, "WRITE SEED")])
def test_field_lost_mid_burn_is_reported_not_done(
    cli: Cli, simulator: Sim, drop_after: int, during: str
) -> None:
    # The burn's card session: GET INFO (confirmation), GET INFO, GET CHALLENGE,
    # AUTHENTICATE, then WRITE CONFIG (5th) and WRITE SEED (6th).
    sim = simulator("--serial", P2, "--seed", "JBSWY3DPEHPK3PXP", "--drop-after", str(drop_after))
    proc = cli("burn", "--secret-file", "-", "--yes", "--json", stdin=SEED_B32)
    assert proc.returncode == 1
    assert js(proc)["ok"] is False
    assert f"left the field during {during}" in proc.stderr
    assert "seed is erased" in proc.stderr or "seed may be erased" in proc.stderr
    state = sim.fresh_state()
    assert state["seed_writes"] == 0
    assert state["config_writes"] == (1 if during == "WRITE SEED" else 0)


def test_no_token_on_any_reader(cli: Cli, pcsc_stack: object) -> None:
    proc = cli("info")
    assert proc.returncode == 3
    assert "no token on any reader" in proc.stderr and "Virtual PCD 00 00" in proc.stderr


def test_two_tokens_need_reader_choice(cli: Cli, simulator: Sim) -> None:
    simulator("--serial", C302, slot=0)
    simulator("--serial", P2, slot=1)
    proc = cli("info", "--quick")
    assert proc.returncode == 3 and "several readers" in proc.stderr
    proc = cli("info", "--quick", "--json", "--reader", "Virtual PCD 00 01")
    assert proc.returncode == 0, proc.stderr
    assert js(proc)["serial"] == P2


def test_unknown_model_is_left_alone(cli: Cli, simulator: Sim) -> None:
    sim = simulator("--serial", "DN0042")
    info = js(cli("info", "--json", "--quick"))
    assert info["model"] == "unknown" and info["programmable"] is False
    proc = cli("burn", "--secret-file", "-", "--yes", stdin=SEED_B32)
    assert proc.returncode == 4 and "cannot be identified" in proc.stderr
    # GET INFO only: one for `info`, two for `burn` (its confirmation and its session).
    assert sim.fresh_state()["apdus"] == 3


def test_simulator_prints_its_display(simulator: Sim) -> None:
    sim = simulator("--serial", C302, "--seed", SEED_B32)
    code = sim.fresh_state()["code"]
    out = sim.stop()
    assert f"{code[:3]} {code[3:]}" in out


def test_secret_on_the_command_line_works_but_warns_once(cli: Cli, simulator: Sim) -> None:
    sim = simulator("--serial", C302)
    proc = cli("burn", "--secret", SEED_B32, "--yes")
    assert proc.returncode == 0, proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines() if "other local users" in ln]
    assert len(warnings) == 1 and "--secret-file" in warnings[0]
    assert sim.fresh_state()["seed_present"] is True


def test_secret_file_readable_by_others_is_warned_about(
    cli: Cli, simulator: Sim, secret_file: Callable[[str], str]
) -> None:
    simulator("--serial", C302)
    path = secret_file(SEED_B32)
    os.chmod(path, 0o644)
    proc = cli("burn", "--secret-file", path, "--yes")
    assert proc.returncode == 0, proc.stderr
    assert "can be read by other users (mode 644)" in proc.stderr


def test_bad_secret_files_are_refused_before_the_token_is_touched(
    cli: Cli, simulator: Sim, secret_file: Callable[[str], str], tmp_path: Path
) -> None:
    sim = simulator("--serial", C302)
    for args, stdin, words in (
        (["--secret-file", str(tmp_path / "nope")], None, "no such secret file"),
        (["--secret-file", secret_file("")], None, "is empty"),
        (["--secret-file", secret_file(f"{SEED_B32}\n{SEED_HEX}")], None, "holds 2 lines"),
        (["--secret-file", "-"], "", "standard input is empty"),
        ([], None, "no secret given"),
    ):
        proc = cli("burn", *args, "--yes", stdin=stdin)
        assert proc.returncode == 2, (args, proc.stderr)
        assert words in proc.stderr.splitlines()[0]
    assert sim.fresh_state()["apdus"] == 0
