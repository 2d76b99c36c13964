"""Molto2 session and simulator together, in-process (the simulator answers; no PC/SC)."""

from __future__ import annotations

import pytest

from tests.helpers import DirectConnection, VirtualClock
from tokenstation.daemon.simulator.molto2 import Molto2Faults, SimulatedMolto2
from tokenstation.daemon.simulator.token import SimulatedToken
from tokenstation.daemon.simulator.totp import totp
from tokenstation.daemon.token import molto2 as m
from tokenstation.daemon.token.errors import AuthenticationRefused, CardLost, RefusedByPolicy
from tokenstation.daemon.token.molto2_session import (
    Molto2Session,
    NoFreeProfile,
    ProfileOccupied,
    recognise,
)
from tokenstation.daemon.token.secret import Secret
from tokenstation.daemon.token.settings import HmacAlgorithm

SEED = Secret(b"12345678901234567890")
OTHER = Secret(b"tokenstation-test-00001")
SHA256_8 = m.ProfileSettings(HmacAlgorithm.SHA256, period=60, digits=8, display_timeout=60)


def setup(
    **kw: object,
) -> tuple[SimulatedMolto2, DirectConnection, Molto2Session, VirtualClock]:
    clock = VirtualClock()
    device = SimulatedMolto2(host_time=clock.time, **kw)  # type: ignore[arg-type]
    conn = DirectConnection(device, clock)  # type: ignore[arg-type]
    customer_key = kw.get("customer_key", m.DEFAULT_CUSTOMER_KEY)
    assert isinstance(customer_key, bytes)
    return device, conn, Molto2Session(conn, customer_key, clock), clock


def test_burn_writes_seed_title_and_settings_and_the_display_shows_the_code() -> None:
    device, _conn, session, clock = setup()
    result = session.burn(7, SEED, SHA256_8, "GitHub:alice")
    p = device.slots[7]
    assert (p.title, p.settings, p.seed) == ("GitHub:alice", SHA256_8, SEED)
    assert result.seed_fingerprint == SEED.fingerprint
    expected = totp(SEED.reveal(), clock.time(), 60, 2, 8)
    assert device.code(7) == expected
    assert abs(p.clock.now() - clock.time()) <= 0.5


def test_profiles_list_titles_and_occupancy_without_authentication() -> None:
    device, conn, session, _ = setup()
    device.preload(3, SEED, m.ProfileSettings(), "Bitbucket")
    listed = session.read_profiles()
    assert len(listed) == 100
    assert [p.index for p in listed if p.seed_present] == [3]
    assert listed[3].title == "Bitbucket"
    assert listed[0].settings() == m.ProfileSettings()  # empty slots report defaults
    assert 0xCE not in conn.instructions()


def test_a_seed_is_never_written_over_an_existing_one() -> None:
    device, conn, session, _ = setup()
    device.preload(4, SEED, m.ProfileSettings(), "Keep me")
    with pytest.raises(ProfileOccupied, match="profile 4"):
        session.burn(4, OTHER, m.ProfileSettings(), "New")
    assert device.slots[4].seed == SEED
    assert device.slots[4].title == "Keep me"
    # refused before authenticating: no challenge, no write of any kind
    assert not {0x4B, 0xCE, 0xC5, 0xD5, 0xD4} & set(conn.instructions())


def test_next_free_skips_occupied_profiles() -> None:
    device, _conn, session, _ = setup()
    for i in (0, 1, 3):
        device.preload(i, SEED, m.ProfileSettings(), f"p{i}")
    assert session.next_free() == 2


def test_a_full_device_has_no_next_free_profile() -> None:
    device, _conn, session, _ = setup(profiles=50)
    for i in range(50):
        device.preload(i, SEED, m.ProfileSettings(), "x")
    listed = session.read_profiles()
    assert len(listed) == 50  # a first-generation Molto2 stops at 49
    with pytest.raises(NoFreeProfile):
        session.next_free(listed)


def test_one_authentication_for_many_writes_and_never_a_retry() -> None:
    device, conn, session, _ = setup(customer_key=b"our own key")
    session.burn(0, SEED, m.ProfileSettings(), "a")
    session.burn(1, OTHER, m.ProfileSettings(), "b")
    assert conn.instructions().count(0xCE) == 1
    assert device.slots[1].seed == OTHER

    device, conn, _session, clock = setup(customer_key=b"our own key")
    wrong = Molto2Session(conn, m.DEFAULT_CUSTOMER_KEY, clock)
    with pytest.raises(AuthenticationRefused, match="9 attempts are left") as refused:
        wrong.burn(0, SEED, m.ProfileSettings(), "a")
    # One account of what happened, then what to do: no "unknown status" beside it.
    assert refused.value.message.endswith("(the key was refused)")
    assert "unknown" not in str(refused.value)
    with pytest.raises(RefusedByPolicy, match="never retried"):
        wrong.burn(1, SEED, m.ProfileSettings(), "a")
    assert conn.instructions().count(0xCE) == 1
    assert device.attempts_left == 9
    assert device.slots[0].seed is None


def test_sync_sets_every_seeded_profile_and_reports_drift_before_and_after() -> None:
    device, _conn, session, clock = setup(clock_offset_s=-42.0)
    device.preload(2, SEED, SHA256_8, "two")
    device.preload(9, OTHER, m.ProfileSettings(), "nine")
    results = session.sync()
    assert [r.profile for r in results] == [2, 9]
    for r in results:
        assert r.drift_before_s is not None and -43.5 < r.drift_before_s < -40.5
        assert r.drift_after_s is not None and abs(r.drift_after_s) <= 1.0
    assert device.slots[2].settings == SHA256_8  # read, never rewritten
    assert device.slots[2].seed == SEED
    assert (device.slots[2].sync_writes, device.slots[2].config_writes) == (1, 0)
    assert device.slots[5].sync_writes == 0  # empty profiles are left alone
    assert device.code(2) == totp(SEED.reveal(), clock.time(), 60, 2, 8)


def test_sync_of_an_empty_device_authenticates_nothing() -> None:
    _device, conn, session, _ = setup()
    assert session.sync() == []
    assert 0xCE not in conn.instructions()


def test_delete_keeps_the_title_and_reports_an_empty_profile() -> None:
    device, _conn, session, _ = setup()
    device.preload(5, SEED, m.ProfileSettings(), "Gone")
    assert session.delete(5) is True
    assert device.slots[5].seed is None and device.slots[5].title == "Gone"
    assert session.delete(5) is False


def test_key_change_and_factory_reset_wait_for_the_button() -> None:
    device, _conn, session, clock = setup()
    assert session.change_key(b"new key") is True
    assert device.pending is not None and device.key == m.derive_key(m.DEFAULT_CUSTOMER_KEY)
    assert device.press_button() == "key"
    assert device.key == m.derive_key(b"new key")
    device.preload(1, SEED, m.ProfileSettings(), "x")
    fresh = Molto2Session(DirectConnection(device, clock), b"new key", clock)  # type: ignore[arg-type]
    assert fresh.factory_reset() is True
    assert device.slots[1].seed is not None
    device.press_button()
    assert device.slots[1].seed is None
    assert device.key == m.derive_key(m.DEFAULT_CUSTOMER_KEY)


def test_pulled_mid_burn_is_reported_and_the_seed_is_not_doubled() -> None:
    device, _conn, session, clock = setup(faults=Molto2Faults(drop_after=5))
    # info, profile read, challenge, auth, seed write -> pulled before the title
    with pytest.raises(CardLost):
        session.burn(0, SEED, m.ProfileSettings(), "a")
    assert device.slots[0].seed == SEED
    device.faults.drop_after = None
    device.unplugged()
    again = Molto2Session(DirectConnection(device, clock), clock=clock)  # type: ignore[arg-type]
    assert again.next_free() == 1
    with pytest.raises(ProfileOccupied):
        again.burn(0, SEED, m.ProfileSettings(), "a")


def test_public_data_with_le_is_refused_like_the_hardware() -> None:
    device, _, _, _ = setup()
    assert device.process(m.read_profile(0) + b"\x00") == b"\x6f\xfb"


def test_recognition() -> None:
    device, conn, _, clock = setup()
    assert recognise("Virtual PCD 00 00", conn)
    token_conn = DirectConnection(SimulatedToken(host_time=clock.time), clock)
    assert not recognise("Virtual PCD 00 01", token_conn)
    # real readers: by name only, nothing sent
    before = len(conn.sent)
    assert recognise("TOKEN2 Molto2 [CCID Interface] 00 00", conn)
    assert not recognise("HID OMNIKEY 5427 CK 00 00", conn)
    assert not recognise("Token2 PIN+R3 00 00", conn)
    assert len(conn.sent) == before
    assert device.apdus == before


def test_titles_over_12_bytes_are_refused_before_anything_is_sent() -> None:
    _device, conn, session, _ = setup()
    with pytest.raises(Exception, match="12 bytes"):
        session.burn(0, SEED, m.ProfileSettings(), "a" * 13)
    assert conn.sent == []


@pytest.mark.parametrize("digits", [4, 6, 8, 10])
def test_expected_code_matches_the_simulated_display_for_every_digit_count(digits: int) -> None:
    from tokenstation.daemon.provisioning.otpcode import expected_code
    from tokenstation.daemon.token.settings import TokenSettings

    t = 1_800_000_015.5
    code, _ = expected_code(SEED, TokenSettings(HmacAlgorithm.SHA256, 60), t, digits)
    assert code == totp(SEED.reveal(), t, 60, 2, digits)
