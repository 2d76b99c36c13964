"""Token operations against the real simulator, in-process, on a virtual clock.

These are the behaviours a user relies on: drift to a tenth of a second, a clock
sync that keeps the seed where the model allows it and is refused where it does
not, a burn whose codes match pyotp, and the safety rules (one authentication,
never retried; no writes to unknown models; a lost field is never success).
"""

from __future__ import annotations

import pytest

from tokenstation.daemon.provisioning.otpcode import expected_code
from tokenstation.daemon.simulator.token import CLOCK_PHASES, PROFILES, Faults, SimulatedToken
from tokenstation.daemon.token import commands
from tokenstation.daemon.token.crypto import TOKEN2_KEY
from tokenstation.daemon.token.errors import (
    AuthenticationRefused,
    CardLost,
    InvalidInput,
    RefusedByPolicy,
    RestrictedSync,
    UnknownModel,
)
from tokenstation.daemon.token.models import Model, ModelTable, VendorFamily
from tokenstation.daemon.token.secret import Secret
from tokenstation.daemon.token.session import ClockKind, TokenSession
from tokenstation.daemon.token.settings import HmacAlgorithm, TokenSettings

from helpers import DirectConnection, VirtualClock

C302 = "86596320000001"  # unrestricted
P2 = "86596220000001"  # restricted
SEED = Secret(b"12345678901234567890")
OTHER_KEY = bytes(range(16))


#: Both simulator personalities, each with both clock behaviours.
PERSONALITIES = [
    pytest.param(profile, phase, id=f"{profile}-{phase}")
    for profile in PROFILES
    for phase in CLOCK_PHASES
]


def make(
    serial: str = C302, offset: float = 0.0, **kw: object
) -> tuple[SimulatedToken, DirectConnection, TokenSession]:
    clock = VirtualClock()
    token = SimulatedToken(serial=serial, clock_offset_s=offset, host_time=clock.time, **kw)  # type: ignore[arg-type]
    conn = DirectConnection(token, clock)
    return token, conn, TokenSession(conn, clock=clock)


def token_offset(token: SimulatedToken) -> float:
    return token.clock.now() - token.host_time()


@pytest.mark.parametrize(("profile", "phase"), PERSONALITIES)
@pytest.mark.parametrize("offset", [37.4321, -12.8, 0.05, -0.95, 0.5, 0.0, 3600.999])
def test_drift_is_measured_to_well_under_a_tenth_of_a_second(
    offset: float, profile: str, phase: str
) -> None:
    _token, _conn, session = make(offset=offset, profile=profile, clock_phase=phase)
    ident = session.identify()
    assert ident.drift.method == "rollover"
    assert abs(ident.drift.drift_s - offset) < 0.02
    assert ident.drift.uncertainty_s < 0.015


def test_identify_reports_serial_and_model_with_its_sync_rule() -> None:
    _t, _c, session = make(serial=P2)
    ident = session.identify(precise=False)
    assert ident.serial == P2
    assert ident.model.name == "OTPC-P2-i"
    assert ident.model.restricted_sync
    assert ident.drift.method == "single-read"
    assert ident.drift.uncertainty_s <= 0.51


def test_identify_sends_only_get_info() -> None:
    _t, conn, session = make()
    session.identify()
    assert set(conn.sent) == {commands.GET_INFO}


@pytest.mark.parametrize("profile", PROFILES)
def test_sync_on_unrestricted_model_sets_clock_and_keeps_seed(profile: str) -> None:
    token, _conn, session = make(offset=37.4, seed=SEED, profile=profile)
    settings = TokenSettings(HmacAlgorithm.SHA256, 60, 120)
    result = session.set_clock(settings)
    assert token.seed == SEED
    assert token.settings == settings
    assert result.residual is not None
    assert abs(result.residual.drift_s) < 0.01
    assert abs(token_offset(token)) < 0.01
    assert result.clock_kind is ClockKind.PHASE_RESETTING and result.clock_writes == 1


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize(
    ("offset", "writes", "after"),
    [
        (37.4, 1, 0.4),  # the kept phase is .4: no whole second does better
        (-8.6, 1, 0.4),
        (12.8, 2, -0.2),  # .8 kept: one second back leaves -0.2
        (-3.3, 2, -0.3),
        (100.55, 2, -0.45),
    ],
)
def test_sync_of_a_phase_keeping_clock_takes_the_whole_second_with_the_least_error(
    profile: str, offset: float, writes: int, after: float
) -> None:
    token, conn, session = make(offset=offset, seed=SEED, profile=profile, clock_phase="keep")
    result = session.set_clock(TokenSettings())
    assert result.clock_kind is ClockKind.PHASE_KEEPING
    assert result.clock_writes == writes
    assert conn.instructions().count(commands.INS_WRITE_CONFIG) == writes
    assert abs(token_offset(token) - after) < 0.01
    assert result.residual is not None
    assert abs(result.residual.drift_s - token_offset(token)) <= result.residual.uncertainty_s
    assert result.as_dict()["drift_bound_s"] == 0.5
    assert token.seed == SEED


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("offset", [12.8, -3.3, 37.4])
def test_a_known_phase_keeping_clock_is_set_with_one_write(profile: str, offset: float) -> None:
    token, conn, session = make(offset=offset, profile=profile, clock_phase="keep")
    result = session.set_clock(TokenSettings(), clock_kind=ClockKind.PHASE_KEEPING)
    assert result.clock_writes == 1
    assert conn.instructions().count(commands.INS_WRITE_CONFIG) == 1
    assert abs(token_offset(token)) <= 0.5
    assert result.clock_kind is ClockKind.PHASE_KEEPING


def test_a_wrongly_remembered_clock_kind_is_corrected_by_measuring() -> None:
    # Remembered as phase-keeping, but this token resets: the measurement says so,
    # and a second, timed write brings it to the host's second.
    token, _conn, session = make(offset=12.8, clock_phase="reset")
    result = session.set_clock(TokenSettings(), clock_kind=ClockKind.PHASE_KEEPING)
    assert result.clock_kind is ClockKind.PHASE_RESETTING
    assert result.clock_writes == 2
    assert abs(token_offset(token)) < 0.01


def test_a_known_phase_resetting_clock_is_not_measured_before_the_write() -> None:
    token, conn, session = make(offset=12.8)
    result = session.set_clock(TokenSettings(), clock_kind=ClockKind.PHASE_RESETTING)
    assert conn.instructions()[:4] == [0x41, 0x4B, 0xCE, 0xD4]
    assert result.clock_writes == 1 and abs(token_offset(token)) < 0.01


def test_a_phase_keeping_clock_whose_phase_matches_the_host_cannot_be_told_apart() -> None:
    token, _conn, session = make(offset=20.02, clock_phase="keep")
    result = session.set_clock(TokenSettings())
    assert result.clock_kind is ClockKind.UNKNOWN  # either kind would land here
    assert result.clock_writes == 1 and abs(token_offset(token)) < 0.1


@pytest.mark.parametrize("profile", PROFILES)
def test_restricted_reburn_on_a_phase_keeping_clock_keeps_the_seed_through_both_writes(
    profile: str,
) -> None:
    token, conn, session = make(
        serial=P2, offset=7.9, seed=SEED, profile=profile, clock_phase="keep"
    )
    result = session.set_clock(TokenSettings(), seed=SEED)
    assert result.clock_writes == 2
    # Each config write erases the seed on this model, so each is followed by the seed.
    assert conn.instructions().count(commands.INS_WRITE_SEED) == 2
    assert token.seed == SEED
    assert abs(token_offset(token) + 0.1) < 0.01


@pytest.mark.parametrize("profile", PROFILES)
def test_sync_on_restricted_model_is_refused_before_anything_is_written(profile: str) -> None:
    token, conn, session = make(serial=P2, offset=20, seed=SEED, profile=profile)
    with pytest.raises(RestrictedSync, match="erases its seed"):
        session.set_clock(TokenSettings())
    assert token.seed == SEED
    assert token.config_writes == 0
    assert conn.instructions() == [commands.INS_GET_INFO]  # not even a challenge


@pytest.mark.parametrize(("profile", "phase"), PERSONALITIES)
def test_sync_on_restricted_model_with_seed_reburns_it(profile: str, phase: str) -> None:
    token, _conn, session = make(
        serial=P2, offset=20.3, seed=SEED, profile=profile, clock_phase=phase
    )
    result = session.set_clock(TokenSettings(), seed=SEED)
    assert token.seed == SEED
    assert abs(token_offset(token)) < (0.31 if phase == "keep" else 0.01)
    assert result.clock_kind.bound_s >= abs(token_offset(token))


@pytest.mark.parametrize("profile", PROFILES)
def test_unknown_model_is_read_only(profile: str) -> None:
    token, conn, session = make(serial="12345678", profile=profile)
    ident = session.identify(precise=False)
    assert not ident.model.programmable
    with pytest.raises(UnknownModel):
        session.burn(SEED, TokenSettings())
    assert token.config_writes == 0
    assert commands.INS_AUTHENTICATE not in conn.instructions()
    assert commands.INS_GET_CHALLENGE not in conn.instructions()


def test_configured_vendor_family_makes_a_prefix_writable_with_its_own_key() -> None:
    clock = VirtualClock()
    token = SimulatedToken(serial="EX0012345", key=OTHER_KEY, host_time=clock.time)
    family = VendorFamily("excelsecu-test", OTHER_KEY)
    table = ModelTable([Model("EX00", "eSecuOTP-test", family, restricted_sync=True)])
    session = TokenSession(DirectConnection(token, clock), models=table, clock=clock)
    session.burn(SEED, TokenSettings())
    assert token.seed == SEED


@pytest.mark.parametrize("profile", PROFILES)
def test_burn_programs_seed_settings_and_clock_and_codes_match_pyotp(profile: str) -> None:
    token, conn, session = make(serial=P2, offset=-300, profile=profile)
    settings = TokenSettings(HmacAlgorithm.SHA256, 30, 60)
    result = session.burn(SEED, settings)
    assert token.seed == SEED and token.settings == settings
    assert result.seed_fingerprint == SEED.fingerprint
    # The token2 display keeps the old (empty) values until the token is switched off
    # and on; the firmware core shows the new seed at once.
    assert (token.code() is None) is token.latches_display
    token.power_cycle()
    code, _until = expected_code(SEED, settings, token.host_time())
    assert token.code() == code
    # Sequence: info, challenge, auth, config, seed, info (read back).
    assert conn.instructions() == [0x41, 0x4B, 0xCE, 0xD4, 0xC5, 0x41]
    assert conn.redacted[4] is True  # the seed write is never traced in clear


@pytest.mark.parametrize(("profile", "phase"), PERSONALITIES)
def test_burn_works_on_every_personality_and_clock_kind(profile: str, phase: str) -> None:
    token, _c, session = make(serial=P2, offset=-300.37, profile=profile, clock_phase=phase)
    result = session.burn(SEED, TokenSettings())
    assert token.seed == SEED and result.clock_writes == 1
    # One timed write: a kept phase (.63 here) stays, within the read-back tolerance.
    assert abs(token_offset(token) - (0.63 if phase == "keep" else 0.0)) < 0.01
    token.power_cycle()
    code, _until = expected_code(SEED, TokenSettings(), token.clock.now())
    assert token.code() == code


def test_burn_clock_lands_on_the_host_second_boundary() -> None:
    token, _c, session = make(offset=-5.37)
    session.burn(SEED, TokenSettings())
    assert abs(token.clock.now() - token.host_time()) < 0.002


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("length", [10, 16, 20, 32, 48, 63])
def test_every_seed_length_round_trips(length: int, profile: str) -> None:
    token, _c, session = make(profile=profile)
    seed = Secret(bytes((i * 7 + 3) % 256 for i in range(length)))
    session.burn(seed, TokenSettings())
    assert token.seed == seed


def test_seed_too_long_is_refused_before_touching_the_token() -> None:
    _t, conn, session = make()
    with pytest.raises(InvalidInput):
        session.burn(Secret(bytes(64)), TokenSettings())
    assert conn.sent == []


@pytest.mark.parametrize("profile", PROFILES)
def test_wrong_key_is_refused_once_and_never_retried(profile: str) -> None:
    token, conn, session = make(key=OTHER_KEY, profile=profile)
    with pytest.raises(AuthenticationRefused) as err:
        session.burn(SEED, TokenSettings())
    assert "do not retry" in str(err.value).lower()
    assert token.fail_count == 1
    with pytest.raises(RefusedByPolicy, match="never retried"):
        session.set_clock(TokenSettings())
    assert conn.instructions().count(commands.INS_AUTHENTICATE) == 1
    assert token.fail_count == 1
    assert token.config_writes == 0


def test_lockout_after_n_failures_refuses_even_the_right_key() -> None:
    token = SimulatedToken(serial=C302, lockout_after=2, key=OTHER_KEY)
    for _ in range(2):  # two separate sessions, each failing once
        clock = VirtualClock()
        token.host_time = clock.time
        with pytest.raises(AuthenticationRefused):
            TokenSession(DirectConnection(token, clock), clock=clock).burn(SEED, TokenSettings())
    assert token.locked
    token.key = TOKEN2_KEY
    clock = VirtualClock()
    with pytest.raises(AuthenticationRefused):
        TokenSession(DirectConnection(token, clock), clock=clock).burn(SEED, TokenSettings())
    assert token.seed is None


def test_field_lost_before_seed_write_is_not_success() -> None:
    # info, challenge, auth, config answered; the field drops on WRITE SEED.
    token, _c, session = make(serial=P2, seed=Secret(b"old seed"), faults=Faults(drop_after=4))
    with pytest.raises(CardLost) as err:
        session.burn(SEED, TokenSettings())
    msg = str(err.value)
    assert "WRITE SEED" in msg and SEED.fingerprint in msg and "erased" in msg
    assert token.seed is None  # the restricted model lost its old seed with the config write


def test_field_lost_on_config_write_is_reported() -> None:
    # A clock known to reset its phase needs no measurement first: info, challenge,
    # auth, then the field drops on WRITE CONFIG.
    token, _c, session = make(offset=9, faults=Faults(drop_after=3))
    with pytest.raises(CardLost, match="WRITE CONFIG"):
        session.set_clock(TokenSettings(), clock_kind=ClockKind.PHASE_RESETTING)
    assert token.config_writes == 0


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("form", list(commands.ChallengeForm))
def test_all_three_challenge_forms_work(form: commands.ChallengeForm, profile: str) -> None:
    clock = VirtualClock()
    token = SimulatedToken(serial=C302, host_time=clock.time, profile=profile)
    session = TokenSession(DirectConnection(token, clock), clock=clock, challenge_form=form)
    session.burn(SEED, TokenSettings())
    assert token.seed == SEED


def test_optional_select_is_sent_once() -> None:
    clock = VirtualClock()
    token = SimulatedToken(serial=C302, host_time=clock.time)
    conn = DirectConnection(token, clock)
    TokenSession(conn, clock=clock, select=True).burn(SEED, TokenSettings())
    assert conn.sent[0] == commands.SELECT
    assert conn.sent.count(commands.SELECT) == 1


def test_secret_never_shows_its_bytes() -> None:
    s = Secret(b"12345678901234567890")
    for text in (repr(s), str(s), f"{s}", repr([s])):
        assert "1234" not in text and "3132" not in text
        assert s.fingerprint in text
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(s)
