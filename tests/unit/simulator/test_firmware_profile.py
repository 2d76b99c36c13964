"""The opent2otp personality answers as Token2's published firmware core does (section 10).

Plus what both personalities owe every host: a u32 clock that wraps, a UID from the
whole serial, and an answer to every APDU.
"""

from __future__ import annotations

import pytest

from tokenstation.daemon.simulator.token import SimulatedToken
from tokenstation.daemon.token import commands, crypto
from tokenstation.daemon.token.commands import InfoForm
from tokenstation.daemon.token.secret import Secret
from tokenstation.daemon.token.settings import TokenSettings

from helpers import VirtualClock

KEY = crypto.TOKEN2_KEY
R = bytes.fromhex("1122334455667788")


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def sw(reply: bytes | None) -> str:
    assert reply is not None
    return reply[-2:].hex().upper()


def firmware(**kw: object) -> SimulatedToken:
    return SimulatedToken(profile="opent2otp", random=lambda n: R, **kw)  # type: ignore[arg-type]


def login(token: SimulatedToken) -> None:
    assert token.process(commands.get_challenge()) == R + h("9000")
    assert token.process(commands.authenticate(KEY, R)) == h("9000")


def test_any_get_info_answers_the_untagged_form() -> None:
    clock = VirtualClock(1700000000.5)
    token = firmware(serial="86596220000001", host_time=clock.time)
    expected = h("00 00 00 0E") + b"86596220000001" + h("00 00 65 53 F1 00 90 00")
    for apdu in (
        "80 41 00 00 02 02 11",
        "80 41 00 00 02 02 11 00",
        "80 41 07 09",
        "80 41 00 00 00",
    ):
        assert token.process(h(apdu)) == expected
    assert commands.parse_info(expected[:-2]).form is InfoForm.UNTAGGED


@pytest.mark.parametrize(
    ("apdu", "status"),
    [
        ("80 41 00", "6700"),  # under 4 bytes
        ("80 CE 00 00 10 00 01", "6700"),  # Lc beyond the data
        ("84 D4 00 00 03 01 02 03", "6700"),  # CLA 84 with Lc under 4
        ("80 99 00 00", "6D00"),
        ("80 4B 07 00 00", "6D00"),  # GET CHALLENGE with P1 other than 08
        ("00 A4 04 00 06 B0 00 00 00 00 23", "6E00"),  # SELECT: not its class
        ("FF CA 00 00 00", "6E00"),
        ("A0 41 00 00", "6E00"),
        ("80 CE 00 00 10 " + "00" * 16, "6A80"),  # AUTH without a pending challenge
        ("84 D4 00 00 17 " + "00" * 23, "6983"),  # the MAC is checked first
        ("84 99 00 00 04 00 00 00 00", "6983"),  # ... even before the INS
    ],
)
def test_status_words_and_their_order(apdu: str, status: str) -> None:
    assert sw(firmware().process(h(apdu))) == status


def test_auth_framing_error_keeps_the_challenge_a_wrong_answer_drops_it() -> None:
    token = firmware()
    token.process(commands.get_challenge())
    assert sw(token.process(h("80 CE 00 00 08 " + "00" * 8))) == "6A80"
    assert token.process(commands.authenticate(KEY, R)) == h("9000")  # still pending
    token.process(commands.get_challenge())
    assert sw(token.process(commands.authenticate(bytes(16), R))) == "6983"
    assert sw(token.process(commands.authenticate(KEY, R))) == "6A80"  # dropped


def test_no_lockout_even_when_one_is_asked_for() -> None:
    token = firmware(lockout_after=1)
    for _ in range(5):
        token.process(commands.get_challenge())
        assert sw(token.process(commands.authenticate(bytes(16), R))) == "6983"
    login(token)
    assert not token.locked


def test_login_survives_field_loss_but_not_a_new_challenge_or_switch_off() -> None:
    token = firmware()
    login(token)
    token.field_reset()
    assert sw(token.process(commands.write_config(KEY, TokenSettings(), 1700000000))) == "9000"
    token.process(commands.get_challenge())
    assert sw(token.process(commands.write_config(KEY, TokenSettings(), 1700000000))) == "6983"
    login(token)
    token.power_cycle()
    assert sw(token.process(commands.write_config(KEY, TokenSettings(), 1700000000))) == "6983"


def test_the_token2_personality_ends_the_login_with_the_field() -> None:
    token = SimulatedToken(random=lambda n: R)
    login(token)
    token.field_reset()
    assert sw(token.process(commands.write_config(KEY, TokenSettings(), 1700000000))) == "6983"


def test_config_takes_any_values_in_the_fixed_order_and_refuses_others() -> None:
    token = firmware()
    login(token)
    odd = h("81 11 1F 01 07 0F 04 65 53 F1 00 86 06 0A 01 05 0D 01 2D")  # 45 s, HMAC 5
    assert sw(token.process(commands.secured(KEY, 0xD4, 0, 0, odd))) == "9000"
    assert token.raw_config == (7, 5, 45)
    assert token.clock.seconds() == 1700000000
    # Tags in another order, a time-only TLV, a short body: 6A80.
    swapped = h("81 11 0F 04 65 53 F1 00 1F 01 01 86 06 0A 01 01 0D 01 1E")
    time_only = h("81 06 0F 04 65 53 F1 00")
    for body in (swapped, time_only, odd[:-1]):
        assert sw(token.process(commands.secured(KEY, 0xD4, 0, 0, body))) == "6A80"
    assert token.config_writes == 1


def test_a_refused_config_may_have_switched_the_running_hmac_until_reactivation() -> None:
    token = firmware(seed=Secret(b"old seed kept"), restricted_sync=True)
    login(token)
    bad_step_tag = h("81 11 1F 01 02 0F 04 65 53 F1 00 86 06 0A 01 02 0E 01 1E")
    assert sw(token.process(commands.secured(KEY, 0xD4, 0, 0, bad_step_tag))) == "6A80"
    assert token.raw_config == (2, 2, 30)  # display and HMAC taken before the bad tag
    assert token.seed is not None and token.config_writes == 0  # never erased when refused
    token.field_reset()
    assert token.raw_config == (1, 1, 30)


def test_seed_framing_per_the_core() -> None:
    token = firmware()
    login(token)
    aligned = crypto.sm4_ecb_encrypt(KEY, bytes(range(1, 33)))  # no extra pad block
    assert sw(token.process(commands.secured(KEY, 0xC5, 1, 0, aligned))) == "6A80"
    ends_like_padding = crypto.sm4_ecb_encrypt(KEY, bytes(range(1, 16)) + b"\x80")
    assert sw(token.process(commands.secured(KEY, 0xC5, 1, 0, ends_like_padding))) == "9000"
    assert token.seed == Secret(bytes(range(1, 16)))  # silently stored shorter
    empty = crypto.sm4_ecb_encrypt(KEY, b"\x80" + bytes(15))
    assert sw(token.process(commands.secured(KEY, 0xC5, 1, 0, empty))) == "9000"
    assert token.seed is None  # the empty seed erases it
    assert sw(token.process(commands.secured(KEY, 0xC5, 1, 0, b""))) == "6A80"


def test_a_new_seed_shows_at_once_no_power_cycle_latch() -> None:
    clock = VirtualClock(59)
    token = firmware(host_time=clock.time, seed=Secret(b"previous seed"))
    login(token)
    token.process(commands.write_seed(KEY, Secret(b"12345678901234567890")))
    assert token.code() == "287082"  # RFC 6238 at T = 59


@pytest.mark.parametrize("profile", ["token2", "opent2otp"])
def test_the_u32_clock_wraps_and_get_info_keeps_answering(profile: str) -> None:
    clock = VirtualClock(1700000000.0)
    token = SimulatedToken(profile=profile, host_time=clock.time, random=lambda n: R)
    login(token)
    assert sw(token.process(commands.write_config(KEY, TokenSettings(), 0xFFFFFFFF))) == "9000"
    reply = token.process(commands.GET_INFO)
    assert reply is not None and reply[-6:] == h("FF FF FF FF 90 00")
    clock.sleep(1.5)
    reply = token.process(commands.GET_INFO)
    assert reply is not None and reply[-6:] == h("00 00 00 00 90 00")


@pytest.mark.parametrize("phase", ["reset", "keep"])
def test_clock_phase_on_a_write(phase: str) -> None:
    clock = VirtualClock(1700000000.0)
    token = SimulatedToken(host_time=clock.time, clock_offset_s=5.7, clock_phase=phase)
    token.clock.set(1700000100)
    kept = 0.7 if phase == "keep" else 0.0
    assert token.clock.now() - 1700000100 == pytest.approx(kept, abs=1e-6)


def test_uids_come_from_the_whole_serial() -> None:
    a = SimulatedToken(serial="86596320000001").uid
    b = SimulatedToken(serial="86596220000001").uid  # same last six digits
    assert a != b and len(a) == len(b) == 7 and a[0] == 0x04
    assert SimulatedToken(serial="86596320000001").uid == a
