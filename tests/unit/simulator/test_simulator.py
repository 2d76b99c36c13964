"""The simulated token answers as token-protocol.md section 8 says, strictly."""

from __future__ import annotations

import pytest

from tokenstation.daemon.simulator.token import Faults, SimulatedToken
from tokenstation.daemon.simulator.vpcd import contactless_atr
from tokenstation.daemon.token import commands, crypto
from tokenstation.daemon.token.secret import Secret
from tokenstation.daemon.token.settings import TokenSettings

from helpers import VirtualClock

KEY = crypto.TOKEN2_KEY


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def authed_token(**kw: object) -> SimulatedToken:
    token = SimulatedToken(random=lambda n: h("1122334455667788"), **kw)  # type: ignore[arg-type]
    assert token.process(commands.get_challenge()) == h("1122334455667788 9000")
    assert token.process(commands.authenticate(KEY, h("1122334455667788"))) == h("9000")
    return token


def sw(reply: bytes | None) -> str:
    assert reply is not None
    return reply[-2:].hex().upper()


def test_get_info_answers_in_the_documented_layout() -> None:
    clock = VirtualClock(1700000000.5)
    token = SimulatedToken(serial="86596220000001", host_time=clock.time)
    assert token.process(commands.GET_INFO) == h(
        "95 16 02 0E 38 36 35 39 36 32 32 30 30 30 30 30 30 31 11 04 65 53 F1 00 90 00"
    )


@pytest.mark.parametrize(
    ("apdu", "status"),
    [
        ("80 41 00 00 02 02 11 00", "6700"),  # GET INFO as case 4 is refused
        ("80 41 00 01 02 02 11", "6A86"),
        ("80 41 00 00 01 02", "6A80"),
        ("80 99 00 00", "6D00"),  # unknown instruction
        ("A0 41 00 00 02 02 11", "6E00"),  # unknown class
        ("00 A4 04 00 06 B0 00 00 00 00 23", "9000"),  # the optional SELECT
        ("00 A4 04 00 06 A0 00 00 06 47 2F", "6A82"),  # someone else's AID (FIDO)
        ("80 4B 07 00 00", "6A86"),
        ("80 4B 08 00 02 00 00", "6700"),
        ("80 CE 00 00 10 " + "00" * 16, "6983"),  # no challenge
    ],
)
def test_commands_outside_the_protocol_get_iso_errors(apdu: str, status: str) -> None:
    assert sw(SimulatedToken().process(h(apdu))) == status


def test_get_uid_pseudo_apdu_is_answered() -> None:
    reply = SimulatedToken().process(h("FF CA 00 00 00"))
    assert reply is not None and reply[-2:] == h("9000") and len(reply) == 9


def test_writes_without_authentication_are_refused() -> None:
    token = SimulatedToken()
    assert sw(token.process(commands.write_config(KEY, TokenSettings(), 1700000000))) == "6983"
    assert sw(token.process(commands.write_seed(KEY, Secret(b"x" * 20)))) == "6983"
    assert token.config_writes == token.seed_writes == 0


def test_a_bad_mac_is_refused() -> None:
    token = authed_token()
    apdu = bytearray(commands.write_config(KEY, TokenSettings(), 1700000000))
    apdu[-1] ^= 1
    assert sw(token.process(bytes(apdu))) == "6983"


def test_a_new_challenge_clears_authentication() -> None:
    token = authed_token()
    token.process(commands.get_challenge())
    assert sw(token.process(commands.write_config(KEY, TokenSettings(), 1700000000))) == "6983"


def test_a_malformed_config_tlv_is_refused() -> None:
    token = authed_token()
    tlv = bytearray(h("81 11 1F 01 01 0F 04 65 53 F1 00 86 06 0A 01 01 0D 01 1E"))
    tlv[5] = 0x0E  # retag the time as an unknown tag
    apdu = commands.secured(KEY, 0xD4, 0, 0, bytes(tlv))
    assert sw(token.process(apdu)) == "6A80"
    bad_step = h("81 11 1F 01 01 0F 04 65 53 F1 00 86 06 0A 01 01 0D 01 0F")
    assert sw(token.process(commands.secured(KEY, 0xD4, 0, 0, bad_step))) == "6A80"


def test_an_aligned_seed_without_its_pad_block_is_rejected() -> None:
    token = authed_token()
    unpadded = crypto.sm4_ecb_encrypt(KEY, bytes(range(1, 33)))
    assert sw(token.process(commands.secured(KEY, 0xC5, 1, 0, unpadded))) == "6A80"
    assert token.seed is None


def test_restricted_config_write_erases_the_seed_unrestricted_keeps_it() -> None:
    for serial, kept in (("86596220000001", False), ("86596320000001", True)):
        token = authed_token(serial=serial, seed=Secret(b"old"))
        assert sw(token.process(commands.write_config(KEY, TokenSettings(), 1700000000))) == "9000"
        assert (token.seed is not None) is kept


def test_clock_runs_fast_by_its_ppm() -> None:
    clock = VirtualClock(1_000_000.0)
    token = SimulatedToken(host_time=clock.time, drift_ppm=100.0)
    clock.sleep(86400)
    assert token.clock.now() - clock.time() == pytest.approx(8.64, abs=1e-6)


def test_display_changes_only_after_power_cycle() -> None:
    clock = VirtualClock(59)
    token = authed_token(host_time=clock.time, seed=Secret(b"previous seed"))
    before = token.code()
    token.process(commands.write_seed(KEY, Secret(b"12345678901234567890")))
    assert token.code() == before
    token.power_cycle()
    assert token.code() == "287082"  # RFC 6238 at T = 59


def test_switched_off_token_does_not_answer() -> None:
    token = SimulatedToken()
    token.switch_off()
    assert token.process(commands.GET_INFO) is None


def test_faults_drop_after_and_refuse_all() -> None:
    token = SimulatedToken(faults=Faults(drop_after=1))
    assert token.process(commands.GET_INFO) is not None
    assert token.process(commands.GET_INFO) is None
    token = SimulatedToken(faults=Faults(refuse_all=True))
    assert sw(token.process(commands.GET_INFO)) == "6983"


def test_snapshot_has_the_documented_keys_and_no_seed() -> None:
    token = SimulatedToken(seed=Secret(b"12345678901234567890"))
    snap = token.snapshot()
    for key in (
        "serial",
        "model",
        "token_time",
        "seed_present",
        "hmac",
        "period",
        "display_timeout",
        "code",
    ):
        assert key in snap
    assert "12345678901234567890" not in str(snap) and "3132333435" not in str(snap)


def test_atr_has_the_pcsc_contactless_form() -> None:
    atr = contactless_atr(b"TS-SIM01")
    assert atr[:4] == h("3B 88 80 01")
    tck = 0
    for b in atr[1:]:
        tck ^= b
    assert tck == 0
