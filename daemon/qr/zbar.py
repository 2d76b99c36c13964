"""Image file -> QR payloads. The only module that imports pyzbar.

zbar alone misses what screenshots and photos often are: dark-mode (inverted) codes,
very small or very large ones, soft or uneven photos. Passes are tried cheapest
first and the first that finds a code wins. zbar runs in binary mode so the bytes are
ours to decode (UTF-8, else Shift_JIS, else ISO-8859-1, as QR readers commonly do)
instead of zbar's charset guess, which garbles some non-ASCII codes.

The passes run on a copy scaled to at most ``image.FALLBACK_MAX_SIDE`` pixels, and stop at
a deadline: the work per image is bounded whatever its size (see decode.py, which
runs zxing-cpp first and these passes as its fallback; it imports this module only when
the fallback runs or status names the decoders).
"""

from __future__ import annotations

import ctypes
import functools
import time
from collections.abc import Callable, Iterator
from ctypes import byref, c_uint, c_void_p, cast, string_at

from PIL import Image, ImageFilter, ImageOps

from tokenstation.daemon.qr.image import ImageError, sane_copy
from tokenstation.daemon.qr.symbols import DecodeResult, Symbol, bytes_to_text, unique

try:
    from pyzbar import zbar_library as _zbar_library
except ImportError:  # Debian 13 packages no pyzbar: zxing-cpp reads alone there
    _zbar_library = None


def _find_library(name: str, _find: Callable[[str], str | None] | None = None) -> str | None:
    """libzbar by its soname first: ctypes' find_library runs `ldconfig -p` in a subprocess,
    which costs every `tokenstation scan` ~20 ms; it is asked only when that fails."""
    if name == "zbar":
        try:
            ctypes.CDLL("libzbar.so.0")
        except OSError:
            pass
        else:
            return "libzbar.so.0"
    return _find(name) if _find else None


if _zbar_library is not None:
    _zbar_library.find_library = functools.partial(
        _find_library, _find=_zbar_library.find_library
    )  # before pyzbar.wrapper loads libzbar

try:
    from pyzbar import pyzbar as _pyzbar
    from pyzbar import wrapper as _zw
except ImportError:
    _pyzbar = _zw = None

#: Whether zbar can be used (pyzbar is installed).
AVAILABLE = _pyzbar is not None
#: zbar_config_t ZBAR_CFG_BINARY (zbar >= 0.23; pyzbar's enum predates it).
_CFG_BINARY = 4
#: zbar_symbol_type_t values (zbar's ABI): QR code; the 1D symbologies a token's serial
#: barcode may use (Code 128, Code 39, EAN-13, interleaved 2 of 5).
_QRCODE = 64
_LINEAR = (128, 39, 13, 25)


def describe() -> str:
    """ "zbar 0.23" (the library pyzbar loaded)."""
    if not AVAILABLE:
        return "zbar: pyzbar is not installed"
    major, minor, patch = c_uint(0), c_uint(0), c_uint(0)
    try:
        # Called directly: zbar >= 0.23 writes a third number (the patch level), which
        # pyzbar's two-argument prototype would let it write to a stray address.
        _zw.load_libzbar().zbar_version(byref(major), byref(minor), byref(patch))
    except (AttributeError, OSError):  # pragma: no cover - very old libzbar
        return "zbar"
    return f"zbar {major.value}.{minor.value}"


def _scan(image: Image.Image, symbologies: tuple[int, ...]) -> list[bytes]:
    gray = image if image.mode == "L" else image.convert("L")
    pixels = gray.tobytes()
    width, height = gray.size
    found: list[bytes] = []
    with _pyzbar._image_scanner() as scanner:
        _zw.zbar_image_scanner_set_config(scanner, 0, _zw.ZBarConfig.CFG_ENABLE, 0)
        for sym in symbologies:
            _zw.zbar_image_scanner_set_config(scanner, sym, _zw.ZBarConfig.CFG_ENABLE, 1)
        _zw.zbar_image_scanner_set_config(scanner, _QRCODE, _CFG_BINARY, 1)
        with _pyzbar._image() as zimg:
            _zw.zbar_image_set_format(zimg, _pyzbar._FOURCC["L800"])
            _zw.zbar_image_set_size(zimg, width, height)
            data = cast(pixels, c_void_p)  # type: ignore[arg-type]
            _zw.zbar_image_set_data(zimg, data, len(pixels), None)
            if _zw.zbar_scan_image(scanner, zimg) < 0:
                raise ImageError("zbar refused the image format")
            for sym in _pyzbar._symbols_for_image(zimg):
                found.append(
                    string_at(_zw.zbar_symbol_get_data(sym), _zw.zbar_symbol_get_data_length(sym))
                )
    return found


def _otsu(gray: Image.Image) -> Image.Image:
    hist = gray.histogram()
    total = sum(hist)
    sum_all = sum(i * h for i, h in enumerate(hist))
    w_b = 0
    sum_b = 0.0
    best, threshold = 0.0, 128
    for t in range(256):
        w_b += hist[t]
        w_f = total - w_b
        if w_b == 0:
            continue
        if w_f == 0:
            break
        sum_b += t * hist[t]
        between = w_b * w_f * (sum_b / w_b - (sum_all - sum_b) / w_f) ** 2
        if between > best:
            best, threshold = between, t
    return gray.point(lambda p: 255 if p > threshold else 0)


def _rotate(gray: Image.Image, angle: int) -> Image.Image:
    return gray.rotate(angle, expand=True, fillcolor=255)


def _resize(gray: Image.Image, factor: float) -> Image.Image:
    w, h = gray.size
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return gray.resize(size, Image.Resampling.LANCZOS)


Pass = tuple[str, Callable[[Image.Image], Image.Image]]


def _passes(gray: Image.Image) -> Iterator[Pass]:
    """Preprocessing passes, cheapest and most often useful first."""
    w, h = gray.size
    longest, shortest = max(w, h), min(w, h)
    yield "as is", lambda g: g
    yield "inverted", ImageOps.invert
    if shortest < 500:
        yield "upscaled x2", lambda g: _resize(g, 2)
    if longest > 1200:
        yield "downscaled", lambda g: _resize(g, 1000 / longest)
    yield "binarised", _otsu
    yield "smoothed", lambda g: g.filter(ImageFilter.GaussianBlur(1.5))
    if shortest < 300:
        yield "upscaled x3", lambda g: _resize(g, 3)
    if longest > 800:
        yield "downscaled more", lambda g: _resize(g, 600 / longest)
    yield "inverted binarised", lambda g: ImageOps.invert(_otsu(g))
    yield "mirrored", ImageOps.mirror  # codes seen through glass or a selfie camera
    yield "dark modules thickened", lambda g: g.filter(ImageFilter.MinFilter(5))
    for angle in (-10, 10, 45, -40):
        yield f"rotated {angle}°", functools.partial(_rotate, angle=angle)


def decode_image(
    gray: Image.Image, *, linear: bool = True, deadline: float | None = None
) -> DecodeResult:
    """Every QR code in the first pass that finds any; else 1D barcodes (serial labels).

    ``deadline`` (a ``time.monotonic()`` value) stops the passes early: the result then
    has ``timed_out`` set.
    """
    size = gray.size
    if not AVAILABLE:
        return DecodeResult((), "", size)
    gray = sane_copy(gray)
    for name, transform in _passes(gray):
        if deadline is not None and time.monotonic() > deadline:
            return DecodeResult((), "", size, timed_out=True)
        found = _scan(transform(gray), (_QRCODE,))
        if found:
            symbols = [Symbol("QR-Code", bytes_to_text(b), b) for b in found]
            return DecodeResult(unique(symbols), f"zbar: {name}", size)
    if linear:
        found = _scan(gray, _LINEAR)
        if found:
            symbols = [Symbol("barcode", b.decode("latin-1"), b) for b in found]
            return DecodeResult(unique(symbols), "zbar: as is", size)
    return DecodeResult((), "", size)
