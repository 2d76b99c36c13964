"""The hand-over writers: Entra CSV and Graph JSON byte for byte, OATH CSV, PSKC read back."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from pskc import PSKC
from pskc.exceptions import DecryptionError

from tokenstation.daemon.handover.formats import FORMATS, render
from tokenstation.daemon.handover.protection import (
    Protection,
    ProtectionProblem,
    load_password,
    load_psk,
)
from tokenstation.daemon.handover.record import BurnedToken, printed_serial
from tokenstation.daemon.token.secret import Secret

SEED1 = bytes(range(20))  # SHA-1: 20 bytes
SEED2 = bytes(range(100, 132))  # SHA-256: 32 bytes
PSK = bytes.fromhex("00112233445566778899aabbccddeeff")


def token(order: int, seed: bytes, algorithm: str = "sha1", **kw: object) -> BurnedToken:
    fields: dict[str, object] = dict(
        serial=f"6070{order:04d}",
        manufacturer="Token2",
        model="C302-i",
        algorithm=algorithm,
        digits=6,
        period=30,
        upn=f"user{order}@example.org",
        label=f"ACME:user{order}@example.org",
        batch="b1",
        order=order,
        seed=Secret(seed),
    )
    fields.update(kw)
    return BurnedToken(**fields)  # type: ignore[arg-type]


def test_entra_csv_is_the_documented_header_and_columns_sha256_left_pending() -> None:
    out = render(
        FORMATS["entra-csv"],
        [token(2, SEED1, period=60), token(1, SEED1), token(3, SEED2, "sha256")],
        Protection(),
    )
    b32 = base64.b32encode(SEED1).decode().rstrip("=")
    assert out.data == (
        b"upn,serial number,secret key,time interval,manufacturer,model\r\n"
        + f"user1@example.org,60700001,{b32},30,Token2,C302-i\r\n".encode()
        + f"user2@example.org,60700002,{b32},60,Token2,C302-i\r\n".encode()
    )
    assert b"=" not in out.data.split(b"\r\n")[1]
    [(left, why)] = out.left
    assert left.serial == "60700003" and "SHA256" in why and "entra-json" in why


def test_entra_csv_neutralises_a_formula_and_leaves_upn_empty_without_assignment() -> None:
    out = render(FORMATS["entra-csv"], [token(1, SEED1, upn="", model="=cmd")], Protection())
    assert out.data.split(b"\r\n")[1].startswith(b",60700001,")
    assert out.data.split(b"\r\n")[1].endswith(b",Token2,'=cmd")


def test_entra_json_is_the_graph_bulk_body() -> None:
    out = render(FORMATS["entra-json"], [token(2, SEED2, "sha256"), token(1, SEED1)], Protection())
    expected = {
        "@context": "#$delta",
        "value": [
            {
                "@contentId": "1",
                "serialNumber": "60700001",
                "manufacturer": "Token2",
                "model": "C302-i",
                "secretKey": base64.b32encode(SEED1).decode().rstrip("="),
                "timeIntervalInSeconds": 30,
                "hashFunction": "hmacsha1",
            },
            {
                "@contentId": "2",
                "serialNumber": "60700002",
                "manufacturer": "Token2",
                "model": "C302-i",
                "secretKey": base64.b32encode(SEED2).decode().rstrip("="),
                "timeIntervalInSeconds": 30,
                "hashFunction": "hmacsha256",
            },
        ],
    }
    assert out.data == (json.dumps(expected, indent=2) + "\n").encode()
    assert not out.left


def test_oath_csv_refuses_a_seed_length_privacyidea_would_read_as_another_hash() -> None:
    out = render(
        FORMATS["oath-csv"],
        [token(1, SEED1), token(2, SEED2, "sha256"), token(3, SEED2, "sha1")],
        Protection(),
    )
    assert out.data == (
        f"60700001,{SEED1.hex()},TOTP,6,30\n60700002,{SEED2.hex()},TOTP,6,30\n".encode()
    )
    [(left, why)] = out.left
    assert left.order == 3 and "PSKC" in why


def read_back(data: bytes, tmp_path: Path) -> PSKC:
    path = tmp_path / "batch.pskcxml"
    path.write_bytes(data)
    return PSKC(str(path))


def test_pskc_with_a_preshared_key_reads_back_in_the_narrow_shape(tmp_path: Path) -> None:
    out = render(
        FORMATS["pskc"], [token(2, SEED2, "sha256", digits=8), token(1, SEED1)], Protection(PSK)
    )
    assert SEED1.hex().encode() not in out.data and base64.b64encode(SEED1) not in out.data
    text = out.data.decode()
    assert 'Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:totp"' in text
    assert "aes128-cbc" in text and "hmac-sha1" in text and "TimeDrift" not in text
    doc = read_back(out.data, tmp_path)
    doc.encryption.key = PSK
    k1, k2 = doc.keys
    assert (k1.serial, k1.id, k1.algorithm_suite, k1.response_length) == (
        "60700001",
        "60700001",
        "SHA1",
        6,
    )
    assert (k2.serial, k2.algorithm_suite, k2.response_length) == ("60700002", "SHA256", 8)
    assert (k1.secret, k2.secret) == (SEED1, SEED2)
    assert (k1.time_offset, k1.time_interval, k1.response_encoding) == (0, 30, "DECIMAL")
    assert (k1.manufacturer, k1.model) == ("Token2", "C302-i")
    k1.check()


def test_pskc_with_a_wrong_key_does_not_open(tmp_path: Path) -> None:
    doc = read_back(render(FORMATS["pskc"], [token(1, SEED1)], Protection(PSK)).data, tmp_path)
    doc.encryption.key = bytes(16)
    with pytest.raises(DecryptionError):
        _ = doc.keys[0].secret


def test_pskc_with_a_password_reads_back_by_pbkdf2(tmp_path: Path) -> None:
    out = render(FORMATS["pskc"], [token(1, SEED1)], Protection(password="s3cret pass"))
    assert "pbkdf2" in out.data.decode()
    doc = read_back(out.data, tmp_path)
    doc.encryption.derive_key("s3cret pass")
    assert doc.keys[0].secret == SEED1


def test_pskc_is_plaintext_only_when_asked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="encrypted"):
        render(FORMATS["pskc"], [token(1, SEED1)], Protection())
    out = render(FORMATS["pskc"], [token(1, SEED1)], Protection(plaintext=True))
    assert read_back(out.data, tmp_path).keys[0].secret == SEED1


def test_a_molto2_profile_is_a_token_of_its_own_serial() -> None:
    assert printed_serial("60712345", 7) == "60712345-07"
    assert printed_serial("60712345", None) == "60712345"


def test_a_record_never_shows_its_seed() -> None:
    r = token(1, SEED1)
    assert SEED1.hex() not in repr(r) and r.base32() not in repr(r)


def test_key_files_are_checked(tmp_path: Path) -> None:
    psk = tmp_path / "psk"
    psk.write_text(PSK.hex() + "\n")
    psk.chmod(0o644)
    with pytest.raises(ProtectionProblem, match="chmod 600"):
        load_psk(psk)
    psk.chmod(0o600)
    assert load_psk(psk).psk == PSK
    psk.write_text("abcd\n")
    with pytest.raises(ProtectionProblem, match="32 hex digits"):
        load_psk(psk)
    link = tmp_path / "link"
    link.symlink_to(psk)
    with pytest.raises(ProtectionProblem, match="symbolic link"):
        load_psk(link)
    pw = tmp_path / "pw"
    pw.write_text("horse battery\n")
    pw.chmod(0o600)
    assert load_password(pw).password == "horse battery"
    assert "horse" not in repr(load_password(pw))


def test_the_export_command_offers_exactly_the_formats_of_the_table() -> None:
    from tokenstation.daemon.cli.export_cmds import FORMAT_NAMES

    assert set(FORMAT_NAMES) == set(FORMATS)


def test_the_privacyidea_push_is_https_or_loopback_only(tmp_path: Path) -> None:
    from tokenstation.daemon.config import ConfigError, load

    cfg = tmp_path / "c.toml"
    for url, ok in (
        ("https://pi.example.org/", True),
        ("http://127.0.0.1:5000", True),
        ("http://pi.example.org", False),
        ("https://admin:pw@pi.example.org", False),
    ):
        cfg.write_text(f'[handover.privacyidea]\nurl = "{url}"\napi_token_file = "/t"\n')
        if ok:
            assert load(cfg, required=True).handover.privacyidea.url == url.rstrip("/")
        else:
            with pytest.raises(ConfigError, match="privacyidea"):
                load(cfg, required=True)
    cfg.write_text('[handover.privacyidea]\nurl = "https://pi.example.org"\n')
    with pytest.raises(ConfigError, match="api_token_file"):
        load(cfg, required=True)
    cfg.write_text("[handover]\nkeep_days = 3\n")
    assert load(cfg, required=True).handover.keep_days == 3
