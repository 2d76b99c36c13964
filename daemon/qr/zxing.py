"""Grayscale image -> codes, with zxing-cpp. The only module that imports zxingcpp.

zxing-cpp is optional: without it ``AVAILABLE`` is False and :func:`read` finds
nothing. Its Python API changed between releases (Debian 12 ships 1.4, Debian 13 2.3,
PyPI 3.x): the formats (Micro QR is spelt "MircoQRCode" in 1.4, rMQR came in 2.x), the
way formats are combined, and the keywords ``try_invert`` and ``return_errors``. What
this release has is probed once, on a blank 16x16 image, and what it lacks is made up
for: without ``try_invert`` the caller runs an inverted pass, without ``return_errors``
:func:`read` cannot say whether it saw a code it could not decode (``None``).
"""

from __future__ import annotations

import functools
from typing import Any

from PIL import Image

from tokenstation.daemon.qr.symbols import Symbol, bytes_to_text
from tokenstation.daemon.records import Frozen

_zx: Any
try:
    import zxingcpp as _zx
except ImportError:  # the optional decoder is not installed
    _zx = None

AVAILABLE = _zx is not None

_QR_NAMES = ("QRCode", "MicroQRCode", "MircoQRCode", "RMQRCode")
#: 1D symbologies a token's serial barcode may use.
_LINEAR_NAMES = ("Code128", "Code39", "EAN13", "ITF")


class Features(Frozen):
    """What the installed zxing-cpp can do."""

    formats: tuple[str, ...]
    try_invert: bool
    return_errors: bool
    plain_text: bool

    def __init__(
        self, formats: tuple[str, ...], try_invert: bool, return_errors: bool, plain_text: bool
    ) -> None:
        self._set(
            formats=formats,
            try_invert=try_invert,
            return_errors=return_errors,
            plain_text=plain_text,
        )


def _formats(names: tuple[str, ...]) -> tuple[Any, ...]:
    assert _zx is not None
    return tuple(getattr(_zx.BarcodeFormat, n) for n in names if hasattr(_zx.BarcodeFormat, n))


@functools.cache
def version() -> str:
    """The installed zxing-cpp's version ("" when not installed or not known).

    Read when asked (``describe``, for status), not at import: importlib.metadata alone
    costs a `tokenstation scan` about 20 ms.
    """
    if _zx is None:
        return ""
    import importlib.metadata

    try:
        return importlib.metadata.version("zxing-cpp")
    except importlib.metadata.PackageNotFoundError:
        return str(getattr(_zx, "__version__", ""))  # Debian 12's 1.4 has no metadata


def _combine(formats: tuple[Any, ...]) -> Any:
    """3.x takes a tuple of formats; older releases take ``a | b``."""
    probe = Image.new("L", (16, 16), 255)
    assert _zx is not None
    try:
        _zx.read_barcodes(probe, formats=formats)
        return formats
    except TypeError:
        combined = formats[0]
        for f in formats[1:]:
            combined = combined | f
        return combined


def _accepts(keyword: str) -> bool:
    probe = Image.new("L", (16, 16), 255)
    assert _zx is not None
    try:
        _zx.read_barcodes(probe, **{keyword: True})
    except TypeError:
        return False
    return True


_QR: Any = None
_LINEAR: Any = None
FEATURES: Features | None = None
if _zx is not None:
    _qr_formats = _formats(_QR_NAMES)
    _QR = _combine(_qr_formats)
    _LINEAR = _combine(_formats(_LINEAR_NAMES))
    FEATURES = Features(
        tuple(n for n in _QR_NAMES if hasattr(_zx.BarcodeFormat, n)),
        _accepts("try_invert"),
        _accepts("return_errors"),
        hasattr(_zx, "TextMode") and hasattr(_zx.TextMode, "Plain"),
    )


def describe() -> str:
    """ "zxing-cpp 3.1.1" or why it is not used."""
    if FEATURES is None:
        return "zxing-cpp not installed"
    return f"zxing-cpp {version()}".strip()


def read(
    image: Image.Image, *, global_threshold: bool = False, linear: bool = False
) -> tuple[list[Symbol], bool | None]:
    """(codes found, whether a QR code was seen but could not be decoded).

    QR codes, Micro QR and rMQR codes where supported; with ``linear`` the 1D barcodes
    a token's serial label may use instead. The second item is None when this
    zxing-cpp cannot tell.
    """
    if _zx is None or FEATURES is None:
        return [], None
    kwargs: dict[str, Any] = {"formats": _LINEAR if linear else _QR}
    if global_threshold:
        kwargs["binarizer"] = _zx.Binarizer.GlobalHistogram
    if FEATURES.return_errors:
        kwargs["return_errors"] = True
    if FEATURES.plain_text:
        kwargs["text_mode"] = _zx.TextMode.Plain  # control characters as they are
    results = _zx.read_barcodes(image, **kwargs)
    valid = [r for r in results if getattr(r, "valid", True)]
    unreadable: bool | None = None
    if FEATURES.return_errors:
        unreadable = len(valid) < len(results)
    kind = "barcode" if linear else "QR-Code"
    return [Symbol(kind, _text(r), bytes(r.bytes)) for r in valid], unreadable


def _text(result: Any) -> str:
    """zxing-cpp's text (it honours ECI); our own charset guess when it has none."""
    text = result.text
    return str(text) if text else bytes_to_text(bytes(result.bytes))
