"""Image bytes -> codes: zxing-cpp first, zbar and its preprocessing passes as the fallback.

Measured on the shared corpus, neither decoder reads everything the other reads;
together they read the union (BENCHMARKS.md). zxing-cpp is fast (about a millisecond on
a screenshot) and tries rotations, smaller scales and inverted codes itself, so it goes
first: once as is, then with a global threshold, then smoothed; 1D barcodes (a token's
serial label) only when no QR code is found. zbar's passes (daemon/qr/zbar.py) cost ten
times more each, so they run (and zbar is imported) only when they can help: when
zxing-cpp saw a code it could not decode, or when zxing-cpp cannot say (1.x) or is not
installed. Every frame of an animation is looked at.

The work on one image is bounded: the pixel and frame limits of daemon/imagefile.py,
the passes on a copy of bounded size, and a time budget after which the image is given
up as "no code found within N s" (``timed_out``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

from PIL import Image

from tokenstation.daemon.qr import zxing
from tokenstation.daemon.qr.image import load_frames, sane_copy
from tokenstation.daemon.qr.symbols import DecodeResult, Symbol, unique

#: Seconds one image may take before it is given up.
DEFAULT_BUDGET_S = 4.0

Read = Callable[[Image.Image, Image.Image], tuple[list[Symbol], bool | None]]
Stage = tuple[str, Read]


def decoders() -> str:
    """Which decoders are in use, for `tokenstation status`."""
    from tokenstation.daemon.qr import zbar as qr

    if not qr.AVAILABLE:
        alone = f"{zxing.describe()} alone" if zxing.AVAILABLE else "no QR decoder"
        return f"{alone} ({qr.describe()})"
    zbar = f"{qr.describe()} with preprocessing passes"
    if zxing.AVAILABLE:
        return f"{zxing.describe()}, then {zbar}"
    return f"{zbar} ({zxing.describe()})"


def timed_out_reason(budget_s: float = DEFAULT_BUDGET_S) -> str:
    """The refusal of an image given up at its time budget."""
    return f"no code found within {budget_s:g} s"


def _zxing_stages() -> Iterator[Stage]:
    """zxing-cpp's passes, cheapest and most often useful first: (name, read(frame, copy)).

    The first reads the frame at full size; the others its copy of bounded size.
    """
    yield "zxing-cpp", lambda f, _c: zxing.read(f)
    features = zxing.FEATURES
    if features is not None and not features.try_invert:
        yield "zxing-cpp: inverted", _inverted
    yield "zxing-cpp: global threshold", lambda _f, c: zxing.read(c, global_threshold=True)
    yield "zxing-cpp: smoothed", _smoothed


# ImageOps and ImageFilter are imported by the passes that use them: most images are read
# by the first pass, and a `tokenstation scan` need not load them.
def _inverted(_frame: Image.Image, copy: Image.Image) -> tuple[list[Symbol], bool | None]:
    from PIL import ImageOps

    return zxing.read(ImageOps.invert(copy))


def _smoothed(_frame: Image.Image, copy: Image.Image) -> tuple[list[Symbol], bool | None]:
    from PIL import ImageFilter

    return zxing.read(copy.filter(ImageFilter.BoxBlur(1)), global_threshold=True)


def _name(stage: str, index: int, frames: int) -> str:
    return f"{stage}, frame {index + 1}" if frames > 1 else stage


def decode_frames(
    frames: list[Image.Image],
    *,
    linear: bool = True,
    budget_s: float = DEFAULT_BUDGET_S,
    started: float | None = None,
) -> DecodeResult:
    """QR codes in the first pass and frame that finds any; else 1D barcodes (serials)."""
    deadline = (started if started is not None else time.monotonic()) + budget_s
    size, count = frames[0].size, len(frames)
    zbar_helps: bool = not zxing.AVAILABLE
    copies: dict[int, Image.Image] = {}

    def copy(index: int) -> Image.Image:
        if index not in copies:
            copies[index] = sane_copy(frames[index])
        return copies[index]

    def out_of_time() -> bool:
        return time.monotonic() > deadline

    if zxing.AVAILABLE:
        for stage, read in _zxing_stages():
            for index, frame in enumerate(frames):
                if out_of_time():
                    return DecodeResult((), "", size, count, timed_out=True)
                found, unreadable = read(frame, frame if stage == "zxing-cpp" else copy(index))
                zbar_helps = zbar_helps or unreadable is None or unreadable
                if found:
                    return DecodeResult(unique(found), _name(stage, index, count), size, count)
        if linear:
            found, _unreadable = zxing.read(copy(0), linear=True)
            if found:
                return DecodeResult(unique(found), "zxing-cpp: 1D barcodes", size, count)
    if zbar_helps:
        # Imported only now: pyzbar and ctypes cost a scan that zxing-cpp reads ~20 ms.
        from tokenstation.daemon.qr import zbar as qr

        for index in range(count):
            result = qr.decode_image(
                copy(index), linear=linear and not zxing.AVAILABLE and index == 0, deadline=deadline
            )
            if result.timed_out:
                return DecodeResult((), "", size, count, timed_out=True)
            if result.symbols:
                name = _name(result.pass_name, index, count)
                return DecodeResult(result.symbols, name, size, count)
    return DecodeResult((), "", size, count)


def decode_bytes(
    data: bytes | Path, *, linear: bool = True, budget_s: float = DEFAULT_BUDGET_S
) -> DecodeResult:
    """Load an image file's bytes and decode it; raises :class:`ImageError` when unreadable.

    The time budget counts from here, so a slow load leaves less time for the passes.
    """
    started = time.monotonic()
    frames = load_frames(data)
    return decode_frames(frames, linear=linear, budget_s=budget_s, started=started)
