"""Molto2: every vector of token-protocol.md 6.1 and of the reference tools' tests.

Sources (facts only): Token2's molto2-tools `tests/test_molto2.py` (pinned key, MAC,
config and sync TLVs, title/config/sync/clear/key-change APDUs checked against an
independent construction) and keyroost's `keyroost-proto` tests (`public_data_kat.rs`
and the unit tests in `commands.rs`: APDU bytes and shapes, strict public-data parsing).
The independent construction here uses `cryptography`'s SM4 directly, not crypto.py.
"""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tokenstation.daemon.token import commands, crypto
from tokenstation.daemon.token import molto2 as m
from tokenstation.daemon.token.commands import PublicInfo
from tokenstation.daemon.token.errors import InvalidInput, MalformedResponse
from tokenstation.daemon.token.secret import Secret
from tokenstation.daemon.token.settings import HmacAlgorithm

KEY = m.derive_key(m.DEFAULT_CUSTOMER_KEY)


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def ecb(data: bytes, key: bytes = KEY) -> bytes:
    enc = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    return enc.update(data) + enc.finalize()


def mac(message: bytes, key: bytes = KEY) -> bytes:
    """CBC-MAC as the reference describes it: pad 80 00.. unless aligned, first 4 of last."""
    if len(message) % 16:
        message += b"\x80" + bytes(15 - len(message) % 16)
    enc = Cipher(algorithms.SM4(key), modes.CBC(bytes(16))).encryptor()
    out = enc.update(message) + enc.finalize()
    return out[-16:-12]


SETTINGS = m.ProfileSettings(HmacAlgorithm.SHA1, period=30, digits=6, display_timeout=60)

# -- keys ------------------------------------------------------------------------------------


def test_default_customer_key_and_derived_sm4_key() -> None:
    assert h("544F4B454E324D4F4C544F312D4B4559") == m.DEFAULT_CUSTOMER_KEY
    assert h("09 92 50 FD B0 17 F4 42 DA 42 9E CB BE E1 7F 79") == KEY


def test_customer_key_of_any_length_is_hashed() -> None:
    assert m.derive_key(b"short") == hashlib.sha1(b"short").digest()[:16]
    with pytest.raises(InvalidInput):
        m.derive_key(b"")


def test_customer_key_from_configuration() -> None:
    assert m.parse_customer_key("TOKEN2MOLTO1-KEY") == m.DEFAULT_CUSTOMER_KEY
    assert m.parse_customer_key("hex:" + "00" * 16) == bytes(16)
    for bad in ("hex:xyz", "hex:", "", "tab\there", "clé"):
        with pytest.raises(InvalidInput):
            m.parse_customer_key(bad)


def test_mac_pinned_by_token2() -> None:
    assert crypto.cbc_mac(KEY, b"hello world test!!") == h("2cf7c205")


def test_auth_response_with_the_default_key() -> None:
    # token-protocol.md 3.2: Molto2 default key, R = 11..88.
    apdu = commands.authenticate(KEY, h("1122334455667788"))
    assert apdu == h("80 CE 00 00 10 550EC1328F963EB02972BB141E1CF521")


# -- fixed commands --------------------------------------------------------------------------


def test_fixed_commands() -> None:
    assert h("80 41 00 00 00") == m.GET_INFO
    assert h("80 4B 08 00 00") == m.GET_CHALLENGE
    assert h("80 56 00 00 00") == m.FACTORY_RESET
    assert h("80 D8 0C 02 00") == m.SCREEN_LOCK
    assert h("80 D8 0C 02 01 01") == m.SCREEN_UNLOCK


def test_read_public_data_is_case_3() -> None:
    assert m.read_profile(99) == h("80 41 00 63 01 70")
    assert m.read_profile(0) == h("80 41 00 00 01 70")


def test_delete_seed_is_plain() -> None:
    assert m.delete_seed(99) == h("80 E6 00 63 00")
    assert m.delete_seed(7) == h("80 E6 00 07 00")


@pytest.mark.parametrize("profile", [-1, 100, 255])
def test_profile_numbers_outside_0_99_are_refused(profile: int) -> None:
    with pytest.raises(InvalidInput):
        m.read_profile(profile)


# -- TLVs ------------------------------------------------------------------------------------


def test_config_tlv_pinned_by_token2() -> None:
    assert m.encode_config(SETTINGS, 1700000000) == h(
        "81141f01020f046553f10086090a01010b01060d011e"
    )


def test_sync_tlv_pinned_by_token2() -> None:
    assert m.encode_sync(1700000000) == h("81060f046553f100")


def test_config_tlvs_decode_back() -> None:
    full = m.ProfileSettings(HmacAlgorithm.SHA256, period=60, digits=8, display_timeout=120)
    assert m.decode_config(m.encode_config(full, 0x65432100)) == (full, 0x65432100)
    assert m.decode_config(m.encode_sync(1700000000)) == (None, 1700000000)
    with pytest.raises(MalformedResponse):
        m.decode_config(h("81 0A 0F 04 6553F100 1F 01 02"))  # wrong order / incomplete
    with pytest.raises(MalformedResponse):
        m.decode_config(h("81141f01020f046553f10086090a01010b01050d011e"))  # 5 digits


# -- secured commands, against an independent construction ------------------------------------


def test_title_apdu() -> None:
    enc = ecb(b"Google" + b"\x80" + bytes(9))
    expected = h("84 D5 00 02 14") + enc + mac(h("80D50002 10") + enc)
    assert m.write_title(KEY, 2, "Google") == expected
    assert expected == h("84d5000214934363a4a0b27fe53ac3fbdbdc50a2706d031c44")


@pytest.mark.parametrize("title", ["a", "abcdefghijkl", "hello", "Zoë€"])
def test_title_is_always_one_block_plus_mac(title: str) -> None:
    apdu = m.write_title(KEY, 3, title)
    assert apdu[:5] == h("84 D5 00 03 14")
    assert len(apdu) == 5 + 20


def test_titles_over_12_bytes_are_refused() -> None:
    with pytest.raises(InvalidInput):
        m.write_title(KEY, 3, "a" * 13)
    with pytest.raises(InvalidInput):
        m.write_title(KEY, 3, "")


def test_config_apdu() -> None:
    tlv = h("81141f01020f046553f10086090a01010b01060d011e")
    expected = h("84 D4 01 02 1A") + tlv + mac(h("80D40102 16") + tlv)
    assert m.write_config(KEY, 2, SETTINGS, 1700000000) == expected
    assert expected[-4:] == h("1d87ec54")


def test_config_apdu_length_is_22_plus_mac() -> None:
    apdu = m.write_config(KEY, 12, m.ProfileSettings(), 0x65000000)
    assert apdu[:5] == h("84 D4 01 0C 1A")


def test_sync_apdu() -> None:
    tlv = h("81060f046553f100")
    expected = h("84 D4 01 02 0C") + tlv + mac(h("80D40102 08") + tlv)
    assert m.sync_time(KEY, 2, 1700000000) == expected
    assert expected == h("84d401020c81060f046553f100d57026b2")


def test_sync_apdu_shape() -> None:
    apdu = m.sync_time(KEY, 0, 0x66123456)
    assert apdu[:5] == h("84 D4 01 00 0C")
    assert apdu[5:13] == h("81 06 0F 04 66 12 34 56")


def test_clearing_seed_apdu() -> None:
    enc = ecb(bytes(32))  # 20 zero bytes, zero-padded to 32, no 80 marker
    expected = h("84 C5 01 02 24") + enc + mac(h("80C50102 20") + enc)
    assert m.clear_seed(KEY, 2, 20) == expected


def test_seed_apdu_shapes() -> None:
    apdu = m.write_seed(KEY, 7, Secret(bytes(range(1, 21))))
    assert apdu[:5] == h("84 C5 01 07 24")
    assert len(apdu) == 5 + 36
    assert m.write_seed(KEY, 0, Secret(b"\xab" * 10))[4] == 0x14


def test_seed_apdu_against_independent_construction() -> None:
    seed = b"12345678901234567890"
    enc = ecb(seed + b"\x80" + bytes(11))
    expected = h("84 C5 01 07 24") + enc + mac(h("80C50107 20") + enc)
    assert m.write_seed(KEY, 7, Secret(seed)) == expected


def test_aligned_seed_gets_a_whole_padding_block() -> None:
    assert m.write_seed(KEY, 1, Secret(bytes(range(1, 17))))[4] == 0x24  # 32 + 4


def test_change_key_apdu() -> None:
    new_k = hashlib.sha1(bytes(16)).digest()[:16]
    enc = ecb(b"\x00" + new_k + b"\x80" + bytes(14))
    expected = h("84 D7 00 00 24") + enc + mac(h("80d7000020") + enc)
    assert m.change_key(KEY, bytes(16)) == expected


# -- public data -----------------------------------------------------------------------------


def envelope(body: bytes) -> bytes:
    assert len(body) == 29
    return h("95 1F 70 1D") + body


def krprobe99() -> bytes:
    body = bytearray(29)
    body[0] = 0x20
    body[1:10] = b"KRPROBE99"
    body[17:21] = h("00000E10")
    body[21:25] = h("00015180")
    body[25:29] = h("01 1E 06 01")
    return envelope(bytes(body))


def test_parses_all_zero_block_as_empty_untitled() -> None:
    got = m.parse_profile(5, envelope(bytes(29)))
    assert got == m.ProfileInfo(5, 0, "", 0, 0, 0, 0, 0, False)
    assert got.settings() is None


def test_parses_the_krprobe99_block() -> None:
    got = m.parse_profile(99, krprobe99())
    assert (got.flag, got.title, got.time_a, got.time_b) == (0x20, "KRPROBE99", 3600, 86400)
    assert (got.hmac, got.period, got.digits, got.seed_present) == (HmacAlgorithm.SHA1, 30, 6, True)
    assert got.settings() == m.ProfileSettings(HmacAlgorithm.SHA1, 30, 6, 30)


def test_public_data_round_trips() -> None:
    info = m.parse_profile(99, krprobe99())
    assert m.encode_profile(info) == krprobe99()


def test_non_utf8_title_decodes_lossily() -> None:
    body = bytearray(29)
    body[1:3] = b"\xff\xfe"
    assert m.parse_profile(0, envelope(bytes(body))).title == "\ufffd\ufffd"


def test_title_trailing_zeros_stripped_interior_kept() -> None:
    body = bytearray(29)
    body[1:5] = b"AB\x00C"
    assert m.parse_profile(0, envelope(bytes(body))).title == "AB\x00C"


def test_strict_envelope_rejections() -> None:
    good = krprobe99()
    forged = bytearray(good + bytes(7))
    forged[1] = len(forged) - 2
    bad_cases = [
        good[:-1],
        b"\x95",
        b"",
        b"\x94" + good[1:],
        good[:1] + b"\x20" + good[2:],
        good[:2] + b"\x71" + good[3:],
        good[:3] + b"\x1c" + good[4:],
        good + b"\x00",
        bytes(forged),
    ]
    for bad in bad_cases:
        with pytest.raises(MalformedResponse):
            m.parse_profile(99, bad)


# -- device info -----------------------------------------------------------------------------


def test_untagged_device_info_from_the_reference_test() -> None:
    data = bytes([0, 0, 0, 4, 49, 50, 51, 52, 0, 0]) + (1700000000).to_bytes(4, "big")
    assert m.parse_device_info(data) == PublicInfo("1234", 1700000000)


def test_tagged_device_info() -> None:
    data = commands.encode_info(PublicInfo("58000123", 1700000000))
    assert m.parse_device_info(data) == PublicInfo("58000123", 1700000000)


def test_device_info_shape_is_checked() -> None:
    good = bytes([0, 0, 0, 4, 49, 50, 51, 52, 0, 0]) + bytes(4)
    for bad in (good[:-1], b"\x01" + good[1:], good[:8] + b"\x11\x04" + good[10:], good + b"\0"):
        with pytest.raises(MalformedResponse):
            m.parse_device_info(bad)


# -- titles and readers ----------------------------------------------------------------------


def test_fit_title_cuts_on_a_character_boundary() -> None:
    assert m.fit_title("Bitbucket:alice") == "Bitbucket:al"
    assert m.fit_title("GitHub") == "GitHub"
    assert m.fit_title("ééééééé") == "éééééé"  # 7 x 2 bytes -> 6 fit
    assert m.fit_title("abcdefghijk€") == "abcdefghijk"  # the euro sign would need 3 bytes
    assert m.fit_title("abcdefghijk 12") == "abcdefghijk"


def test_reader_names() -> None:
    assert m.is_molto2_reader("TOKEN2 Molto2 [CCID Interface] 00 00")
    assert not m.is_molto2_reader("Token2 PIN+R3 00 00")
    assert not m.is_molto2_reader("TOKEN2 FIDO2 Security Key 00 00")
    assert not m.is_molto2_reader("Virtual PCD 00 00")
