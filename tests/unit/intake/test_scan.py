"""What a dropped file is: QR decoding (real zbar on generated images), classification,
Google Authenticator exports, CSV batches, and files that must not be read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import segno
from PIL import Image

from tokenstation.daemon.intake.ingest import scan_path
from tokenstation.daemon.intake.migration import encode_migration, parse_migration
from tokenstation.daemon.intake.payload import classify_text
from tokenstation.daemon.qr import zbar as qr
from tokenstation.daemon.token.errors import InvalidInput

URI = "otpauth://totp/Bitbucket:alice?secret=JBSWY3DPEHPK3PXP&issuer=Bitbucket"
SECRET_B32 = "JBSWY3DPEHPK3PXP"


def qr_png(path: Path, text: str, *, scale: int = 4, invert: bool = False) -> Path:
    code = segno.make_qr(text, error="m")
    if invert:
        code.save(path, scale=scale, dark="white", light="black")
    else:
        code.save(path, scale=scale)
    return path


def verdict(path: Path) -> dict[str, object]:
    return scan_path(path).as_dict()


def test_a_plain_enrolment_qr_is_ok_with_a_fingerprint_only(tmp_path: Path) -> None:
    v = verdict(qr_png(tmp_path / "alice.png", URI))
    assert v["verdict"] == "ok" and v["kind"] == "otpauth-totp"
    [acct] = v["accounts"]  # type: ignore[misc]
    assert acct == {
        "issuer": "Bitbucket",
        "account": "alice",
        "type": "totp",
        "algorithm": "SHA1",
        "digits": 6,
        "period": 30,
        "secret_fingerprint": "9b5f5e29",
    }
    assert SECRET_B32 not in json.dumps(v) and SECRET_B32.lower() not in json.dumps(v)


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("dark mode", lambda p: qr_png(p, URI, invert=True)),
        ("tiny", lambda p: qr_png(p, URI, scale=1)),
        ("huge", lambda p: qr_png(p, URI, scale=40)),
        ("jpeg photo, rotated", None),
        ("webp", None),
    ],
)
def test_screenshots_and_photos_decode(tmp_path: Path, name: str, make: object) -> None:
    path = tmp_path / "code.png"
    if name == "jpeg photo, rotated":
        img = Image.open(qr_png(tmp_path / "src.png", URI, scale=6)).convert("L")
        img = img.rotate(8, expand=True, fillcolor=255).resize((300, 300))
        path = tmp_path / "photo.jpg"
        img.save(path, quality=60)
    elif name == "webp":
        img = Image.open(qr_png(tmp_path / "src.png", URI)).convert("RGB")
        path = tmp_path / "shot.webp"
        img.save(path)
    else:
        make(path)  # type: ignore[operator]
    v = verdict(path)
    assert v["verdict"] == "ok", (name, v)


def test_what_pyzbar_alone_misses_the_pipeline_finds(tmp_path: Path) -> None:
    # A dark-mode screenshot: zbar on the raw pixels finds nothing; the inverted pass does.
    gray = Image.open(qr_png(tmp_path / "d.png", URI, invert=True)).convert("L")
    from pyzbar import pyzbar

    assert pyzbar.decode(gray) == []
    result = qr.decode_image(gray)
    assert result.pass_name == "zbar: inverted" and result.symbols[0].text == URI


def test_non_enrolment_codes_are_named(tmp_path: Path) -> None:
    cases = {
        "phonefactor://activate_account?code=123456789&url=https://x": "microsoft-phonefactor",
        "FIDO:/1234567890123456789012345678901234567890": "fido-passkey",
        "https://example.com/login": "url",
        "hello there": "text",
        "otpauth://hotp/X:bob?secret=JBSWY3DPEHPK3PXP&counter=1": "otpauth-hotp",
    }
    for i, (text, kind) in enumerate(cases.items()):
        v = verdict(qr_png(tmp_path / f"c{i}.png", text))
        assert v["kind"] == kind, v
        assert v["verdict"] == "rejected", v
        assert v["reason"]


def test_a_token_serial_barcode_is_ignored_with_a_hint() -> None:
    kind, accounts, reason = classify_text("86596320001234")
    assert kind.value == "token-serial-barcode" and not accounts
    assert "C302-i" in reason and "<serial>.png" in reason


def test_no_qr_several_qrs_and_broken_images(tmp_path: Path) -> None:
    blank = tmp_path / "blank.png"
    Image.new("L", (200, 200), 255).save(blank)
    assert verdict(blank)["kind"] == "no-qr"

    a = Image.open(qr_png(tmp_path / "a.png", URI)).convert("L")
    b = Image.open(qr_png(tmp_path / "b.png", "https://example.com")).convert("L")
    both = Image.new("L", (a.width + b.width + 40, max(a.height, b.height)), 255)
    both.paste(a, (0, 0))
    both.paste(b, (a.width + 40, 0))
    two = tmp_path / "two.png"
    both.save(two)
    v = verdict(two)
    assert v["kind"] == "several-qr" and v["verdict"] == "rejected"
    assert "2 codes" in str(v["reason"]) and v["accounts"] == []

    good = (tmp_path / "a.png").read_bytes()
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(good[: len(good) // 2])
    assert verdict(truncated)["verdict"] == "error"
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image at all")
    v = verdict(junk)
    assert v["verdict"] == "error" and "not an image" in str(v["reason"])


def test_decompression_bombs_are_refused(tmp_path: Path) -> None:
    big = tmp_path / "bomb.png"
    Image.new("1", (12000, 12000), 1).save(big)  # tiny file, 144 Mpx
    v = verdict(big)
    assert v["verdict"] == "error" and "too large" in str(v["reason"])


def test_strict_where_the_token_is() -> None:
    for uri, field in [
        ("otpauth://totp/a?secret=JBSWY3DPEHPK3PXP&algorithm=SHA512", "algorithm"),
        ("otpauth://totp/a?secret=JBSWY3DPEHPK3PXP&digits=8", "digits"),
        ("otpauth://totp/a?secret=JBSWY3DPEHPK3PXP&period=45", "period"),
        ("otpauth://totp/a?secret=" + "A" * 112, "secret"),
    ]:
        _k, accounts, _r = classify_text(uri)
        from tokenstation.daemon.intake.payload import Kind, judge

        v = judge("f", Kind.OTPAUTH_TOTP, accounts, "")
        assert v.verdict == "rejected" and f"{field}:" in v.reason


def test_lenient_where_the_world_is_sloppy() -> None:
    _k, [a], _r = classify_text(
        "otpauth://totp/ACME%3A%20carol?secret=jbsw%20y3dp%20ehpk%203pxp%3D%3D&algorithm=sha256"
        "&image=https%3A%2F%2Fx&foo=bar"
    )
    assert a.issuer == "ACME" and a.account == "carol" and a.algorithm == "SHA256"
    assert a.secret.fingerprint == "9b5f5e29"
    assert any("lower case" in w for w in a.warnings)


def test_google_authenticator_export_with_the_plus_problem() -> None:
    # A secret whose Base64 contains '+', and a negative batch id (10-byte varint).
    uri = encode_migration(
        [
            (bytes([0xFB, 0xEF, 0xBE] * 7), "alice@example.com", "Example", 1, 1, 2),
            (b"abcdefghij", "Other:bob", "", 3, 2, 1),
        ],
        batch_id=-1234567,
    )
    assert "%2B" in uri
    spaced = uri.replace("%2B", " ")  # what a sloppy URL decoder hands over
    batch = parse_migration(spaced)
    assert batch.batch_id == -1234567
    alice, bob = batch.accounts
    assert (alice.issuer, alice.account, alice.type, alice.algorithm, alice.digits) == (
        "Example",
        "alice@example.com",
        "totp",
        "SHA1",
        6,
    )
    assert alice.secret.reveal() == bytes([0xFB, 0xEF, 0xBE] * 7)
    assert (bob.issuer, bob.account, bob.type, bob.algorithm, bob.digits) == (
        "Other",
        "bob",
        "hotp",
        "SHA512",
        8,
    )
    with pytest.raises(InvalidInput, match="data:"):
        parse_migration("otpauth-migration://offline?data=%%%")


def test_text_and_csv_files(tmp_path: Path) -> None:
    txt = tmp_path / "86596320000001.txt"
    txt.write_text(URI + "\n")
    v = scan_path(txt)
    assert v.verdict == "ok" and v.candidates[0].serial == "86596320000001"

    csv_ok = tmp_path / "batch.csv"
    csv_ok.write_text(
        "serial,secret,issuer,account\n86596320000001,JBSWY3DPEHPK3PXP,ACME,dave\n"
        "86596320000002,hex:3132333435363738393031323334353637383930,ACME,erin\n"
    )
    v = scan_path(csv_ok)
    assert v.verdict == "ok" and [c.serial for c in v.candidates] == [
        "86596320000001",
        "86596320000002",
    ]
    csv_bad = tmp_path / "bad.csv"
    csv_bad.write_text("86596320000001,JBSWY3DPEHPK3PXP\nabc,JBSWY3DPEHPK3PXP\n")
    v = scan_path(csv_bad)
    assert (
        v.verdict == "rejected"
        and "row 2: the serial (column 1" in v.reason
        and "abc" not in v.reason
    )
    assert not v.candidates


def test_links_fifos_directories_and_big_files_are_not_read(tmp_path: Path) -> None:
    secret_file = tmp_path / "elsewhere.txt"
    secret_file.write_text(URI)
    (tmp_path / "link.txt").symlink_to(secret_file)
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "dir.png").mkdir()
    assert "symbolic link" in scan_path(tmp_path / "link.txt").reason
    assert "FIFO" in scan_path(tmp_path / "pipe.png").reason  # and it did not block
    assert "directory" in scan_path(tmp_path / "dir.png").reason
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * 2000)
    assert "limit" in scan_path(big, max_bytes=1000).reason


def test_scan_command_json_and_exit_code(tmp_path: Path) -> None:
    good = qr_png(tmp_path / "good.png", URI)
    bad = qr_png(tmp_path / "bad.png", "https://example.com")
    out = subprocess.run(
        [sys.executable, "-m", "tokenstation.daemon", "scan", "--json", str(good), str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 2
    doc = json.loads(out.stdout)
    assert [f["verdict"] for f in doc["files"]] == ["ok", "rejected"]
    keys = {"file", "kind", "verdict", "reason", "warnings", "accounts", "next_step"}
    assert set(doc["files"][0]) == set(doc["files"][1]) == keys
    assert doc["files"][0]["next_step"] == "" and "otpauth" in doc["files"][1]["next_step"]
    assert doc["files"][0]["accounts"][0]["serial"] == ""  # good.png binds to no token
    assert SECRET_B32 not in out.stdout + out.stderr


def test_scan_shows_the_bound_serial_hotp_timing_csv_weakness_and_missing_paths(
    tmp_path: Path,
) -> None:
    bound = qr_png(tmp_path / "86596320000001.png", URI)
    hotp = tmp_path / "hotp.txt"
    hotp.write_text("otpauth://hotp/ACME:bob?secret=JBSWY3DPEHPK3PXP&counter=3\n")
    batch = tmp_path / "batch.csv"
    batch.write_text("serial,secret\n86596320000002,JBSWY3DPEHPK3PXP\n")
    out = subprocess.run(
        [sys.executable, "-m", "tokenstation.daemon", "scan"]
        + [str(p) for p in (bound, hotp, batch, tmp_path / "gone.png")],
        capture_output=True,
        text=True,
        check=False,
    )
    text = out.stdout
    assert "bound to token 86596320000001" in text
    assert "bound to token 86596320000002" in text
    hotp_line = next(ln for ln in text.splitlines() if "ACME:bob" in ln)
    assert "counter-based" in hotp_line and "30 s" not in hotp_line
    assert "80 bits, under the 112 bits" in text.split("batch.csv")[1]  # CSV rows warn too
    missing = text.split("gone.png")[1]
    assert "no such file" in missing and "Check the name and the path" in missing
    assert "drop it again" not in missing
