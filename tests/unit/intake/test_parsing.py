"""TLV, APDU, model table, status words, seed and otpauth parsing."""

from __future__ import annotations

import pytest

from tokenstation.daemon.intake.otpauth import (
    burnable_refusals,
    parse_otpauth,
    parse_secret,
    require_burnable,
)
from tokenstation.daemon.token import tlv
from tokenstation.daemon.token.apdu import Command, Response
from tokenstation.daemon.token.errors import (
    AuthenticationRefused,
    InvalidInput,
    MalformedResponse,
    NotAuthenticated,
    UnsupportedCommand,
    error_for,
)
from tokenstation.daemon.token.models import Model, ModelTable, VendorFamily


def test_tlv_roundtrip_and_long_form() -> None:
    data = tlv.encode(0x02, b"abc") + tlv.encode(0x11, bytes(300))
    items = tlv.parse(data)
    assert [(i.tag, len(i.value)) for i in items] == [(0x02, 3), (0x11, 300)]


@pytest.mark.parametrize("raw", ["02", "02 05 41 42", "00 01 41", "02 FF 00"])
def test_tlv_truncation_is_an_error(raw: str) -> None:
    with pytest.raises(MalformedResponse):
        tlv.parse(bytes.fromhex(raw))


@pytest.mark.parametrize(
    "raw", ["80 4B 08 00", "80 4B 08 00 00", "80 4B 08 00 01 00", "80 41 00 00 02 02 11 00"]
)
def test_apdu_cases_roundtrip(raw: str) -> None:
    b = bytes.fromhex(raw)
    assert Command.decode(b).encode() == b


def test_apdu_with_wrong_lc_is_rejected() -> None:
    with pytest.raises(ValueError, match="Lc"):
        Command.decode(bytes.fromhex("80 41 00 00 05 02 11"))


def test_response_split() -> None:
    r = Response.decode(bytes.fromhex("0102 6983"))
    assert r.data == b"\x01\x02" and r.sw == 0x6983 and not r.ok
    with pytest.raises(MalformedResponse):
        Response.decode(b"\x90")


@pytest.mark.parametrize(
    ("serial", "model", "restricted"),
    [
        ("86596120000001", "OTPC-P1-i", False),
        ("86596220000001", "OTPC-P2-i", True),
        ("86596210000001", "OTPC-P2-i-NB", True),
        ("86596000000001", "miniOTP-2-i", False),
        ("86596010000001", "miniOTP-3-i", True),
        ("86596090000001", "miniOTP-3-i-NB", True),
        ("86596100000001", "C301-i", True),
        ("86596320000001", "C302-i", False),
    ],
)
def test_builtin_model_table(serial: str, model: str, restricted: bool) -> None:
    m = ModelTable().lookup(serial)
    assert (m.name, m.restricted_sync, m.programmable) == (model, restricted, True)


def test_longest_prefix_wins_and_unknown_is_read_only() -> None:
    fam = VendorFamily("test", bytes(16))
    table = ModelTable(
        [Model("86596", "broad", fam, False), Model("865963299", "narrow", fam, True)]
    )
    assert table.lookup("86596329900001").name == "narrow"
    assert table.lookup("86596320000001").name == "C302-i"
    assert table.lookup("86596990000001").name == "broad"
    unknown = ModelTable().lookup("DN123456")
    assert not unknown.programmable and not unknown.clock_write_keeps_seed


def test_vendor_key_is_not_in_repr() -> None:
    fam = VendorFamily("private", bytes.fromhex("00112233445566778899aabbccddeeff"))
    assert "0011" not in repr(fam) and "\\x00" not in repr(fam)


def test_status_word_mapping_says_what_to_do() -> None:
    e = error_for("AUTHENTICATE", 0x6983)
    assert isinstance(e, AuthenticationRefused)
    assert "do not retry" in str(e).lower() and "6983" in str(e)
    assert isinstance(error_for("AUTHENTICATE", 0x63C2), AuthenticationRefused)
    assert isinstance(error_for("WRITE CONFIG", 0x6983), NotAuthenticated)
    assert isinstance(error_for("GET INFO", 0x6E00), UnsupportedCommand)


@pytest.mark.parametrize(
    ("text", "kind", "raw"),
    [
        ("JBSWY3DPEHPK3PXP", "base32", "48656c6c6f21deadbeef"),
        ("jbsw y3dp ehpk 3pxp", "base32", "48656c6c6f21deadbeef"),
        ("JBSWY3DPEHPK3PXP======", "base32", "48656c6c6f21deadbeef"),
        (
            "3132333435363738393031323334353637383930",
            "hex",
            "3132333435363738393031323334353637383930",
        ),
        ("0x48656C6C6F21DEADBEEF", "hex", "48656c6c6f21deadbeef"),
        ("hex:abcdef", "hex", "abcdef"),
        ("base32:ABCDEF22", "base32", "004432175a"),
        ("GEZDGNBV", "base32", "3132333435"),  # 80-bit and shorter seeds are fine
    ],
)
def test_secret_detection(text: str, kind: str, raw: str) -> None:
    secret, detected = parse_secret(text)
    assert detected == kind and secret.reveal().hex() == raw


def test_ambiguous_secret_is_refused_not_guessed() -> None:
    with pytest.raises(InvalidInput, match="both hex and Base32"):
        parse_secret("ABCDEF22")


@pytest.mark.parametrize("text", ["JBSWY3DPEHPK3PX!", "ABC", "0xABC", "hex:zz"])
def test_bad_secret_says_why(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_secret(text)


def test_otpauth_lenient_parse() -> None:
    acc = parse_otpauth(
        "otpauth://totp/Bitbucket:alice%40example.com?secret=jbswy3dpehpk3pxp%3D%3D&"
        "issuer=Bitbucket&algorithm=sha256&image=https%3A%2F%2Fx&period=30"
    )
    assert (acc.issuer, acc.account, acc.algorithm, acc.period) == (
        "Bitbucket",
        "alice@example.com",
        "SHA256",
        30,
    )
    assert any("lower case" in w for w in acc.warnings)
    assert acc.secret.reveal().hex() == "48656c6c6f21deadbeef"
    require_burnable(acc)


def test_otpauth_refusals_name_the_field() -> None:
    acc = parse_otpauth(
        "otpauth://hotp/x?secret=JBSWY3DPEHPK3PXP&digits=8&algorithm=SHA512&period=15"
    )
    reasons = burnable_refusals(acc)
    assert {r.split(":")[0] for r in reasons} == {"type", "algorithm", "digits", "period"}
    with pytest.raises(InvalidInput, match="cannot be burned"):
        require_burnable(acc)


def test_otpauth_without_secret() -> None:
    with pytest.raises(InvalidInput, match="secret: missing"):
        parse_otpauth("otpauth://totp/x?issuer=y")
