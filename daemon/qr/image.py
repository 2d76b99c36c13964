"""Image file -> grayscale frames on white, within pixel and frame limits.

The limits are checked from the header (Pillow opens lazily) before any pixel is
decoded, so a small file that unpacks to a huge bitmap costs nothing. A JPEG over the
pixel limit is decoded at 1/2, 1/4 or 1/8 scale (its DCT allows it for free); any other
format over it is refused. Transparent pixels are composited onto white, as a viewer
shows them (a dark code on a transparent background would otherwise turn black on
black). Every frame of an animated GIF/WebP/PNG and every page of a TIFF is read, up
to ``max_frames`` frames and ``max_pixels`` pixels in all.

Pillow's decompression-bomb guard stays on as well.

Pillow is told the format the file's magic bytes name, so that only that format's
plugin is loaded (a `tokenstation scan` of one PNG need not load the JPEG plugin and
with it subprocess); a file they do not name, or one that plugin cannot identify, is
opened as before, by every plugin Pillow has.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import math
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from tokenstation.daemon.token.problem import Problem, ProblemKind

TYPE_CHECKING = False  # True for type checkers; saves importing typing at start-up
if TYPE_CHECKING:
    from typing import BinaryIO

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"})

#: 40 megapixels: a 48 MP phone photo (a JPEG) is read at half size, a screenshot of
#: any real screen fits whole.
MAX_PIXELS = 40_000_000
#: Frames of an animation or pages of a TIFF looked at.
MAX_FRAMES = 8
#: The longest side of the copy the decoders' extra passes work on.
FALLBACK_MAX_SIDE = 1600

_ORIENTATION = 0x0112  # the EXIF tag
_TRANSPARENT_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


class ImageError(Problem):
    """The file is not an image we can read (empty, corrupt, truncated, too large, ...)."""

    kind = ProblemKind.INVALID


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.0f} megapixels" if pixels >= 1e6 else f"{pixels} pixels"


def _too_large(size: tuple[int, int], max_pixels: int) -> ImageError:
    w, h = size
    return ImageError(
        f"the image is {w}x{h} ({_megapixels(w * h)}), over the {_megapixels(max_pixels)} "
        "limit; crop it to the code or scale it down"
    )


def on_white(frame: Image.Image) -> Image.Image:
    """``frame`` in 8-bit grayscale, transparent pixels composited onto white."""
    transparent = frame.mode in _TRANSPARENT_MODES or "transparency" in frame.info
    if not transparent:
        return frame if frame.mode == "L" else frame.convert("L")
    if frame.mode not in ("LA", "La"):
        frame = frame.convert("RGBA")  # palette and tRNS transparency become alpha
    gray, alpha = frame.convert("LA").split()
    return Image.composite(gray, Image.new("L", frame.size, 255), alpha)


#: Pillow's format name, its plugin and the magic bytes that plugin's ``_accept`` looks
#: for at the start of a file: the image formats the drop folder takes (WebP: below).
_MAGIC: tuple[tuple[str, str, tuple[bytes, ...]], ...] = (
    ("PNG", "PngImagePlugin", (b"\x89PNG\r\n\x1a\n",)),
    ("JPEG", "JpegImagePlugin", (b"\xff\xd8\xff",)),
    ("GIF", "GifImagePlugin", (b"GIF87a", b"GIF89a")),
    ("BMP", "BmpImagePlugin", (b"BM",)),
    (
        "TIFF",
        "TiffImagePlugin",
        (b"II*\x00", b"MM\x00*", b"II\x00*", b"MM*\x00", b"II+\x00", b"MM\x00+"),
    ),
)


def format_of(head: bytes) -> tuple[str, str] | None:
    """(Pillow's format name, its plugin module) for a file starting with ``head``."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP", "WebPImagePlugin"
    for name, plugin, magics in _MAGIC:
        if head.startswith(magics):
            return name, plugin
    return None


def _open(source: Path | BinaryIO) -> Image.Image:
    """``Image.open(source)``, loading only the plugin of the format the magic bytes name.

    On its first open Pillow loads its five common plugins (BMP, GIF, JPEG with
    subprocess, PPM, PNG: about 5 ms of a `tokenstation scan`), and every plugin it has
    for a format beyond them (TIFF, WebP). Here only the file's own plugin is imported,
    and Pillow is told that its common ones are in: it still loads every plugin when it
    is asked for a format it has not got, so nothing it could read is lost. A file its
    magic bytes misname is opened as before, by every plugin.
    """
    if isinstance(source, Path):
        with source.open("rb") as f:
            head = f.read(16)
    else:
        head = source.read(16)
        source.seek(0)
    known = format_of(head)
    if known is not None:
        name, plugin = known
        with contextlib.suppress(ImportError):  # a format this Pillow was built without
            importlib.import_module(f"PIL.{plugin}")
        if name in Image.OPEN:
            if getattr(Image, "_initialized", None) == 0:
                Image._initialized = 1  # the common plugins: on demand (see above)
            try:
                return Image.open(source, formats=[name])
            except UnidentifiedImageError:
                if not isinstance(source, Path):
                    source.seek(0)
    return Image.open(source)


def _fit_jpeg(img: Image.Image, max_pixels: int) -> None:
    """Ask the JPEG decoder for grayscale, at 1/2, 1/4 or 1/8 scale if that fits the limit.

    Grayscale straight from the decoder skips the colour conversion (a third of the
    time on a 12 megapixel photo).
    """
    w, h = img.size
    scale = 1
    if w * h > max_pixels:
        scale = 2 ** math.ceil(math.log2(math.sqrt(w * h / max_pixels)))
    if scale <= 8 and img.mode in ("RGB", "L", "YCbCr"):
        img.draft("L", (math.ceil(w / scale), math.ceil(h / scale)))


def load_frames(
    source: Path | bytes | BinaryIO,
    *,
    max_pixels: int = MAX_PIXELS,
    max_frames: int = MAX_FRAMES,
) -> list[Image.Image]:
    """The first frames of an image file in grayscale on white; raises :class:`ImageError`."""
    if isinstance(source, bytes):
        if not source:
            raise ImageError("the file is empty (0 bytes)")
        source = io.BytesIO(source)
    elif isinstance(source, Path) and source.stat().st_size == 0:
        raise ImageError("the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with _open(source) as img:
                return _frames(img, max_pixels, max_frames)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"the image is too large to decode safely ({exc})") from None
    except UnidentifiedImageError:
        raise ImageError("not an image Pillow can read") from None
    except MemoryError:
        raise ImageError("the image is too large to decode in memory") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"the image is corrupt or truncated ({exc})") from None


def _frames(img: Image.Image, max_pixels: int, max_frames: int) -> list[Image.Image]:
    w, h = img.size
    if img.format == "JPEG":
        _fit_jpeg(img, max_pixels)
    if img.size[0] * img.size[1] > max_pixels:
        raise _too_large((w, h), max_pixels)
    frames: list[Image.Image] = []
    budget = max_pixels
    for index in range(max_frames):
        if index:
            try:
                img.seek(index)
            except EOFError:
                break
            fw, fh = img.size
            if fw * fh > budget:
                break  # the frames read so far are what we decode
        # EXIF before load(): Pillow 9.4 (Debian 12) loses a TIFF's file pointer after it.
        turned = index == 0 and img.getexif().get(_ORIENTATION, 1) != 1
        img.load()
        frame = img
        if turned:
            from PIL import ImageOps

            frame = ImageOps.exif_transpose(img) or img
        gray = on_white(frame)
        animated = bool(getattr(img, "is_animated", False))
        frames.append(gray.copy() if animated and gray is img else gray)
        budget -= img.size[0] * img.size[1]
        if not animated:
            break
    return frames


def sane_copy(gray: Image.Image) -> Image.Image:
    """``gray``, scaled down so its longest side is at most ``FALLBACK_MAX_SIDE``."""
    w, h = gray.size
    longest = max(w, h)
    if longest <= FALLBACK_MAX_SIDE:
        return gray
    factor = FALLBACK_MAX_SIDE / longest
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return gray.resize(size, Image.Resampling.BOX)  # an area average: fast, and enough here
