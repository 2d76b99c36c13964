"""Every worked vector of token-protocol.md sections 2.3 and 3.2-3.4, byte for byte."""

from __future__ import annotations

import hashlib

import pytest

from tokenstation.daemon.simulator.totp import totp
from tokenstation.daemon.token import commands, crypto
from tokenstation.daemon.token.commands import ChallengeForm, InfoForm, PublicInfo
from tokenstation.daemon.token.secret import Secret
from tokenstation.daemon.token.settings import HmacAlgorithm, TokenSettings, encode_config

KEY = crypto.TOKEN2_KEY


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def test_token2_key_is_the_published_one() -> None:
    assert h("8A D2 06 88 3C A3 69 48 2A B2 71 82 B6 E8 32 24") == KEY


# -- 2.1 / 2.3 / 2.4: fixed commands and GET INFO -----------------------------------------


def test_fixed_command_bytes() -> None:
    assert h("00 A4 04 00 06 B0 00 00 00 00 23") == commands.SELECT
    assert h("80 41 00 00 02 02 11") == commands.GET_INFO
    assert commands.get_challenge(ChallengeForm.TOKEN2) == h("80 4B 08 00 01 00")
    assert commands.get_challenge(ChallengeForm.LE) == h("80 4B 08 00 00")
    assert commands.get_challenge(ChallengeForm.BARE) == h("80 4B 08 00")


GET_INFO_EXAMPLE = h(
    "95 16 02 0E 38 36 35 39 36 32 32 30 30 30 30 30 30 31 11 04 65 53 F1 00 90 00"
)


def test_get_info_example_parses() -> None:
    info = commands.parse_info(GET_INFO_EXAMPLE[:-2])
    assert info == PublicInfo("86596220000001", 1700000000)


def test_get_info_example_is_what_a_token_sends() -> None:
    data = commands.encode_info(PublicInfo("86596220000001", 1700000000))
    assert data + b"\x90\x00" == GET_INFO_EXAMPLE


UNTAGGED_EXAMPLE = h("00 00 00 0E") + b"86596220000001" + h("00 00 65 53 F1 00")


def test_the_firmware_cores_untagged_info_is_accepted() -> None:
    # Token2's published core answers 00 00 00 NN serial 00 00 time (section 2.3, 10).
    info = commands.parse_info(UNTAGGED_EXAMPLE)
    assert info == PublicInfo("86596220000001", 1700000000, InfoForm.UNTAGGED)
    assert commands.encode_info(info) == UNTAGGED_EXAMPLE


@pytest.mark.parametrize(
    ("data", "why"),
    [
        # Same content, inner tags swapped: neither fixed layout, so refused.
        (h("95 16 11 04 65 53 F1 00 02 0E") + b"86596220000001", "where 02 belongs"),
        (GET_INFO_EXAMPLE[:-3], "makes it 24"),  # one clock byte short
        (GET_INFO_EXAMPLE[:-2] + b"\x00", "makes it 24"),  # one byte too many
        (h("95 17") + GET_INFO_EXAMPLE[2:-2], "outer length 23"),
        (GET_INFO_EXAMPLE[:18] + h("00 00 65 53 F1 00"), "expected 11 04"),  # mixed forms
        (UNTAGGED_EXAMPLE[:18] + h("11 04 65 53 F1 00"), "expected 00 00"),  # mixed forms
        (h("00 00 01 0E") + UNTAGGED_EXAMPLE[4:], "neither"),
        (h("6A 82"), "too short"),
        (h("00 00 00 00 00 00 65 53 F1 00"), "empty"),
        (h("00 00 00 02 41 0A 00 00 65 53 F1 00"), "printable"),
    ],
)
def test_info_of_neither_exact_layout_is_refused(data: bytes, why: str) -> None:
    from tokenstation.daemon.token.errors import MalformedResponse

    with pytest.raises(MalformedResponse, match=why):
        commands.parse_info(data)


def test_a_u32_clock_at_its_limit_encodes_and_wraps() -> None:
    top = commands.encode_info(PublicInfo("86596220000001", 0xFFFFFFFF))
    assert top[-4:] == h("FF FF FF FF")
    assert commands.encode_info(PublicInfo("86596220000001", 1 << 32))[-4:] == h("00 00 00 00")


# -- 3.2: challenge-response ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "challenge", "response"),
    [
        (KEY, "11 22 33 44 55 66 77 88", "8B 74 50 F2 27 21 BC 29 98 5C 2C 46 0B 65 04 5D"),
        (KEY, "01 02 03 04 05 06 07 08", "C1 CD 2C F4 0D 50 8C ED C1 27 4F F1 AE 4C 19 F1"),
        (
            hashlib.sha1(b"TOKEN2MOLTO1-KEY").digest()[:16],
            "11 22 33 44 55 66 77 88",
            "55 0E C1 32 8F 96 3E B0 29 72 BB 14 1E 1C F5 21",
        ),
    ],
)
def test_auth_response_vectors(key: bytes, challenge: str, response: str) -> None:
    assert crypto.auth_response(key, h(challenge)) == h(response)


def test_molto2_key_derivation() -> None:
    assert hashlib.sha1(b"TOKEN2MOLTO1-KEY").digest()[:16] == h(
        "09 92 50 FD B0 17 F4 42 DA 42 9E CB BE E1 7F 79"
    )


def test_authenticate_apdu() -> None:
    assert commands.authenticate(KEY, h("1122334455667788")) == h(
        "80 CE 00 00 10 8B7450F22721BC29985C2C460B65045D"
    )


# -- 3.3: config write and its MAC ---------------------------------------------------------


def test_config_tlv_and_mac_worked_example() -> None:
    settings = TokenSettings(HmacAlgorithm.SHA1, 30, 30)
    tlv = encode_config(settings, 1700000000)
    assert tlv == h("81 11 1F 01 01 0F 04 65 53 F1 00 86 06 0A 01 01 0D 01 1E")
    mac_in = crypto.mac_input(0xD4, 0, 0, tlv)
    assert crypto.pad_method2(mac_in) == h(
        "80D400001381111F01010F046553F10086060A01010D011E8000000000000000"
    )
    assert crypto.cbc_mac(KEY, mac_in) == h("4F FD C2 88")
    assert commands.write_config(KEY, settings, 1700000000) == h(
        "84 D4 00 00 17 81111F01010F046553F10086060A01010D011E 4FFDC288"
    )


def test_config_golden_vector_sha256_60s() -> None:
    settings = TokenSettings(HmacAlgorithm.SHA256, 60, 60)
    assert commands.write_config(KEY, settings, 0x65432100) == h(
        "84D40000178111 1F0102 0F0465432100 8606 0A0102 0D013C 37A18BF9"
    )


# -- 3.4: seed writes ----------------------------------------------------------------------


def test_seed_golden_vector_20_bytes() -> None:
    seed = Secret(bytes(range(1, 21)))
    assert commands.write_seed(KEY, seed) == h(
        "84C50100246EEAD21474BBF3A0A2B4C18F489E543CF48725A71EE9C3A65963E88BE9405E3D5F6EA0C1"
    )


def test_seed_golden_vector_32_bytes_gets_an_extra_block() -> None:
    seed = Secret(bytes(range(0x10, 0x30)))
    apdu = commands.write_seed(KEY, seed)
    assert apdu == h(
        "84C5010034B830899CFE9DE292CD26D3C7439215CE18503D57AC31735AFA60EBA20F64D6F7D219EFC9"
        "972FED9191DF027FD36A80B0880D59FA"
    )
    assert apdu[4] == 0x34  # 48 bytes of ciphertext + MAC


def test_rfc6238_seed_vector() -> None:
    seed = Secret(b"12345678901234567890")
    padded = crypto.pad_method2(seed.reveal())
    assert padded == b"12345678901234567890" + b"\x80" + bytes(11)
    c = crypto.encrypt_seed(KEY, seed)
    assert c == h("5E5856092FD3228D4D33EEE3DAAC4B55CE37D18D332B7AC6A40E8661FA23042A")
    assert crypto.cbc_mac(KEY, crypto.mac_input(0xC5, 1, 0, c)) == h("F47B0153")
    assert commands.write_seed(KEY, seed) == h("84C5010024") + c + h("F47B0153")
    assert totp(seed.reveal(), 59, 30, 1) == "287082"


def test_hello_seed_vectors_both_framings() -> None:
    raw = h("48656C6C6F21DEADBEEF")
    assert commands.write_seed(KEY, Secret(raw)) == h(
        "84C5010014E37E185346F9F5572F823CDF83FA4F9FBBE381DA"
    )
    zero_filled = raw + bytes(10)
    assert commands.write_seed(KEY, Secret(zero_filled)) == h(
        "84C50100243162105FC9B67095C804B1D4FE05EFCF8BEA5767D1DF80AE794C819D4F7C843CD7C9E128"
    )
    for seed in (raw, zero_filled):
        assert totp(seed, 1700000000, 30, 1) == "324550"
        assert totp(seed, 1700000000, 30, 2) == "049486"


@pytest.mark.parametrize(
    ("length", "lc"),
    [(1, 0x14), (15, 0x14), (16, 0x24), (31, 0x24), (32, 0x34), (47, 0x34), (48, 0x44), (63, 0x44)],
)
def test_seed_lc_by_length(length: int, lc: int) -> None:
    apdu = commands.write_seed(KEY, Secret(bytes(range(1, length + 1))))
    assert apdu[4] == lc
    assert len(apdu) == 5 + lc


@pytest.mark.parametrize("length", [0, 64, 100])
def test_seed_length_out_of_range_is_refused(length: int) -> None:
    from tokenstation.daemon.token.errors import InvalidInput

    with pytest.raises(InvalidInput, match="1 to 63 bytes"):
        commands.write_seed(KEY, Secret(bytes(length)))


def test_seed_roundtrip_through_decrypt() -> None:
    for n in (1, 16, 32, 48, 63):
        seed = Secret(bytes(range(1, n + 1)))
        assert crypto.decrypt_seed(KEY, crypto.encrypt_seed(KEY, seed)) == seed


def test_unpadded_aligned_seed_is_rejected_by_the_framing_check() -> None:
    # totptokutil's bug: a 32-byte seed sent as 32 bytes of ciphertext, no pad block.
    bad = crypto.sm4_ecb_encrypt(KEY, bytes(range(1, 33)))
    assert crypto.decrypt_seed(KEY, bad) is None
