"""Images a decoder used to miss or choke on, generated here: transparent backgrounds,
animations, Micro QR, empty files, huge bitmaps, big photos, and the decode time budget.
Real zxing-cpp, zbar and Pillow; worker processes for the pool."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
import segno
from PIL import Image

from tokenstation.daemon.intake.ingest import judge_bytes, scan_path
from tokenstation.daemon.intake.payload import advice
from tokenstation.daemon.qr import decode, zxing
from tokenstation.daemon.qr import image as imagefile
from tokenstation.daemon.qr import zbar as qr
from tokenstation.daemon.qr.pool import DecodePool

URI = "otpauth://totp/Bitbucket:alice?secret=JBSWY3DPEHPK3PXP&issuer=Bitbucket"

needs_zxing = pytest.mark.skipif(not zxing.AVAILABLE, reason="zxing-cpp is not installed")


def qr_image(text: str = URI, scale: int = 4) -> Image.Image:
    buf = io.BytesIO()
    segno.make_qr(text, error="m").save(buf, kind="png", scale=scale)
    return Image.open(io.BytesIO(buf.getvalue())).convert("L")


def test_a_code_on_a_transparent_background_is_read(tmp_path: Path) -> None:
    # Dark modules on transparent pixels: dropping the alpha channel turns it black on black.
    path = tmp_path / "transparent.png"
    segno.make_qr(URI, error="m").save(path, scale=4, light=None)
    with Image.open(path) as img:
        assert "transparency" in img.info or img.mode in ("RGBA", "LA", "PA")
    v = scan_path(path)
    assert v.verdict == "ok" and v.kind == "otpauth-totp", v


def test_a_code_on_the_second_frame_of_an_animated_gif_is_read(tmp_path: Path) -> None:
    code = qr_image()
    blank = Image.new("L", code.size, 255)
    path = tmp_path / "anim.gif"
    blank.save(path, save_all=True, append_images=[code], duration=500, loop=0)
    with Image.open(path) as img:
        assert img.n_frames == 2
    v = scan_path(path)
    assert v.verdict == "ok" and v.kind == "otpauth-totp", v


def test_a_code_on_the_second_page_of_a_tiff_is_read(tmp_path: Path) -> None:
    code = qr_image()
    path = tmp_path / "scan.tiff"
    Image.new("L", code.size, 255).save(path, save_all=True, append_images=[code])
    assert scan_path(path).verdict == "ok"


@needs_zxing
def test_a_micro_qr_is_read_and_named() -> None:
    if not any("Micro" in f or "Mirco" in f for f in zxing.FEATURES.formats):  # type: ignore[union-attr]
        pytest.skip("this zxing-cpp reads no Micro QR")
    code = segno.make("HELLO")  # segno's default for short text is a Micro QR
    assert code.is_micro
    buf = io.BytesIO()
    code.save(buf, kind="png", scale=6)
    v = judge_bytes("micro.png", buf.getvalue())
    assert v.kind == "text" and "not an enrolment code" in v.reason, v


def test_an_empty_file_is_named_as_empty(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    v = scan_path(tmp_path / "empty.png")
    assert v.verdict == "error" and "the file is empty (0 bytes)" in v.reason, v
    assert "export it again" in advice(v.kind, v.reason)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"])
def test_every_format_is_read_by_its_magic_bytes_whatever_its_name(
    tmp_path: Path, fmt: str
) -> None:
    buf = io.BytesIO()
    qr_image().save(buf, format=fmt)
    assert imagefile.format_of(buf.getvalue()[:16]) == (
        fmt,
        f"{fmt.title()}ImagePlugin".replace("Webp", "WebP"),
    )
    for name in (f"code.{fmt.lower()}", "named-wrongly.png", "named-wrongly.jpg"):
        (tmp_path / name).write_bytes(buf.getvalue())
        v = scan_path(tmp_path / name)
        assert v.verdict == "ok" and v.accounts[0].account == "alice", (fmt, name, v)


def test_a_file_its_magic_bytes_misname_is_refused_as_before(tmp_path: Path) -> None:
    # Each plugin named by the magic bytes refuses it; Pillow's others then try, as before.
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not the chunks of a PNG")
    (tmp_path / "stub.gif").write_bytes(b"GIF89a\x00\x00\x00")
    for name in ("junk.png", "stub.gif"):
        v = scan_path(tmp_path / name)
        assert v.verdict == "error" and v.reason == "image: not an image Pillow can read", v
    # A plugin's own error still reads as one (a "bitmap" that is a letter).
    (tmp_path / "letter.bmp").write_bytes(b"BM, but a letter: not a bitmap at all")
    v = scan_path(tmp_path / "letter.bmp")
    assert v.verdict == "error" and "corrupt or truncated" in v.reason, v


def test_a_huge_blank_bitmap_is_refused_from_its_header(tmp_path: Path) -> None:
    # 9400x9400 1-bit: 22 KB on disk, 88 MB as 8-bit pixels.
    path = tmp_path / "blank.png"
    Image.new("1", (9400, 9400), 1).save(path, optimize=True)
    assert path.stat().st_size < 100_000
    v = scan_path(path)
    assert v.verdict == "error", v
    assert "9400x9400" in v.reason and "over the 40 megapixels limit" in v.reason, v
    assert "crop it" in v.reason


def test_a_big_jpeg_over_the_pixel_limit_is_read_at_a_smaller_scale(tmp_path: Path) -> None:
    code = qr_image(scale=40)
    photo = Image.new("L", (8200, 6000), 235)
    photo.paste(code, (3000, 2000))
    path = tmp_path / "48mp.jpg"
    photo.save(path, quality=85)
    frames = imagefile.load_frames(path)
    assert frames[0].size[0] * frames[0].size[1] <= imagefile.MAX_PIXELS
    assert scan_path(path).verdict == "ok"


def test_a_big_photo_without_a_code_says_no_code(tmp_path: Path) -> None:
    rnd = random.Random(11)
    noise = Image.frombytes("L", (4000, 3000), rnd.randbytes(4000 * 3000))
    path = tmp_path / "photo.jpg"
    noise.save(path, quality=80)
    v = scan_path(path)
    assert v.kind in ("no-qr",) and v.verdict == "rejected", v


def test_an_image_over_its_time_budget_is_refused_with_the_next_step() -> None:
    data = io.BytesIO()
    Image.new("L", (800, 600), 255).save(data, format="PNG")
    v = judge_bytes(
        "slow.png", data.getvalue(), decoder=lambda d: decode.decode_bytes(d, budget_s=0)
    )
    assert v.verdict == "rejected" and v.reason.startswith("no code found within"), v
    assert "Crop the image" in advice(v.kind, v.reason)


def test_zbar_alone_still_reads_when_zxing_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zxing, "AVAILABLE", False)
    monkeypatch.setattr(zxing, "FEATURES", None)
    result = decode.decode_frames([qr_image()])
    assert [s.text for s in result.symbols] == [URI]
    assert result.pass_name.startswith("zbar")
    assert "zxing-cpp not installed" in decode.decoders() and "zbar" in decode.decoders()


@needs_zxing
def test_status_names_both_decoders() -> None:
    text = decode.decoders()
    # "zxing-cpp 3.1.1, then zbar 0.23 ..." (Debian's builds carry no version to name)
    assert text.startswith("zxing-cpp") and f", then {qr.describe()}" in text


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_the_pool_decodes_in_workers_and_replaces_one_that_overruns() -> None:
    pool = DecodePool(workers=1, budget_s=0.0, grace_s=0.0)
    try:
        # No time at all: the worker cannot answer in time, so it is killed.
        first = pool.decode(png(qr_image()))
        assert first.timed_out and not first.symbols
        pool.budget_s, pool.grace_s = decode.DEFAULT_BUDGET_S, 10.0
        result = pool.decode(png(qr_image()))  # a fresh worker reads the next file
        assert [s.text for s in result.symbols] == [URI]
        with pytest.raises(imagefile.ImageError, match="not an image"):
            pool.decode(b"not an image at all")
        assert "worker processes" in pool.describe()
    finally:
        pool.close()


def test_a_file_already_being_judged_is_not_taken_twice() -> None:
    import threading

    pool = DecodePool(workers=2)
    release = threading.Event()
    seen: list[str] = []

    def take(name: object) -> None:
        seen.append(str(name))
        release.wait(10)

    try:
        first = pool.submit(take, "a.png")
        again = pool.submit(take, "a.png")  # the drop folder saw it again meanwhile
        other = pool.submit(take, "b.png")
        assert first is not None and other is not None and again is None
        release.set()
        first.result(10), other.result(10)
        assert sorted(seen) == ["a.png", "b.png"]
        later = pool.submit(take, "a.png")  # done: a new file of that name is taken
        assert later is not None
        later.result(10)
    finally:
        pool.close()


@pytest.mark.parametrize("with_zxing", [True, False])
def test_a_token_serial_label_is_named_by_either_decoder(
    monkeypatch: pytest.MonkeyPatch, with_zxing: bool
) -> None:
    zxingcpp = pytest.importorskip("zxingcpp")
    if not hasattr(zxingcpp, "create_barcode"):
        pytest.skip("this zxing-cpp cannot draw a Code 128 label")
    label = zxingcpp.create_barcode("86596320001234", zxingcpp.BarcodeFormat.Code128)
    view = memoryview(label.to_image(scale=3))
    bars = Image.frombytes("L", (view.shape[1], view.shape[0]), bytes(view))
    page = Image.new("L", (bars.width + 60, bars.height + 60), 255)
    page.paste(bars, (30, 30))
    if not with_zxing:
        monkeypatch.setattr(zxing, "AVAILABLE", False)
        monkeypatch.setattr(zxing, "FEATURES", None)
    v = judge_bytes("label.png", png(page))
    assert v.kind == "token-serial-barcode" and v.verdict == "ignored", v
