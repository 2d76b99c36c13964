"""QR decoding on the zxing-cpp corpus: tokenstation's pipeline beside zxing-cpp, one run.

Three decoders: tokenstation as the daemon runs it (decode.decode_bytes: zxing-cpp first,
zbar's passes as the fallback, 1D serial barcodes looked for too), the same with
zxing-cpp out (zbar and its passes alone, as when zxing-cpp is not installed), and
zxing-cpp alone (PIL open + read_barcodes restricted to QR codes).

For each image: the expected text (the .txt beside it) must be among the decoded texts
(exact match). The false-positive folders must yield nothing. Times are per image,
file read included, each measured ``--reps`` times, the median kept. Then two big
images, decoded in-process: a 4000x3000 noise photo (JPEG) and a 9400x9400 1-bit white
PNG.

    .venv/bin/python bench/bench_qr.py [--corpus DIR] [--reps 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchlib import machine, report
from PIL import Image

from tokenstation.daemon.qr import decode, zxing
from tokenstation.daemon.qr import image as imagefile

BICUBIC = Image.Resampling.BICUBIC
DEFAULT_CORPUS = Path(__file__).resolve().parents[1].parent / "shared/corpus/qr-zxing-cpp"
if not DEFAULT_CORPUS.exists():  # a worktree under /work/wt/NAME
    DEFAULT_CORPUS = Path(__file__).resolve().parents[3] / "shared/corpus/qr-zxing-cpp"


def ours(path: Path) -> list[str]:
    return [s.text for s in decode.decode_bytes(path).symbols]


def ours_without_zxing(path: Path) -> list[str]:
    available, features = zxing.AVAILABLE, zxing.FEATURES
    zxing.AVAILABLE, zxing.FEATURES = False, None
    try:
        return ours(path)
    finally:
        zxing.AVAILABLE, zxing.FEATURES = available, features


def zxing_alone(path: Path) -> list[str]:
    import zxingcpp

    with Image.open(path) as img:
        return [r.text for r in zxingcpp.read_barcodes(img, formats=zxingcpp.BarcodeFormat.QRCode)]


def big_images(reps: int) -> dict[str, object]:
    """The two pathological images of issue 11, decoded as the daemon does (in-process)."""
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        # A photo-like texture (smooth colour fields, sensor grain), and pure noise: the
        # worst case for the JPEG decoder and for the decoders' finder-pattern search.
        photo = Path(tmp) / "photo-4000x3000.jpg"
        fields = random.Random(12).randbytes(200 * 150 * 3)
        smooth = Image.frombytes("RGB", (200, 150), fields).resize((4000, 3000), BICUBIC)
        grain = Image.effect_noise((4000, 3000), 12).convert("RGB")
        Image.blend(smooth, grain, 0.15).save(photo, quality=90)
        noise = Path(tmp) / "noise-4000x3000.jpg"
        pixels = random.Random(11).randbytes(4000 * 3000 * 3)
        Image.frombytes("RGB", (4000, 3000), pixels).save(noise, quality=85)
        blank = Path(tmp) / "white-9400x9400.png"
        Image.new("1", (9400, 9400), 1).save(blank, optimize=True)
        for path in (photo, noise, blank):
            for name, fn in (("tokenstation", verdict_of), ("zxing-cpp", zxing_alone)):
                got, secs = timed(fn, path, reps)
                out[f"{path.stem} {name}"] = {"s": round(secs, 3), "result": got[:1]}
    return out


def verdict_of(path: Path) -> list[str]:
    try:
        result = decode.decode_bytes(path)
    except imagefile.ImageError as exc:
        return [f"refused: {exc}"]
    return [s.text for s in result.symbols] or ["no code"]


def timed(fn: Callable[[Path], list[str]], path: Path, reps: int) -> tuple[list[str], float]:
    times = []
    out: list[str] = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn(path)
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    decoders = {
        "tokenstation": ours,
        "tokenstation without zxing-cpp": ours_without_zxing,
        "zxing-cpp": zxing_alone,
    }
    stats: dict[str, dict[str, object]] = {
        name: {"decoded": 0, "false_positives": 0, "ms": [], "fp_ms": []} for name in decoders
    }
    total = 0
    per_folder: dict[str, dict[str, int]] = {}
    for folder in sorted(p for p in args.corpus.iterdir() if p.is_dir()):
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in imagefile.IMAGE_SUFFIXES)
        false_pos = folder.name.startswith("falsepositives")
        if folder.name.startswith("multi"):
            continue
        counts = per_folder.setdefault(folder.name, {"images": 0, **{n: 0 for n in decoders}})
        for image in images:
            counts["images"] += 1
            expected_file = image.with_suffix(".txt")
            expected = (
                expected_file.read_bytes().decode("utf-8") if expected_file.exists() else None
            )
            if not false_pos:
                total += 1
            for name, fn in decoders.items():
                got, secs = timed(fn, image, args.reps)
                s = stats[name]
                (s["fp_ms"] if false_pos else s["ms"]).append(secs * 1000)  # type: ignore[union-attr]
                if false_pos:
                    s["false_positives"] = int(s["false_positives"]) + bool(got)  # type: ignore[call-overload]
                    counts[name] += bool(got)
                elif expected is not None and expected in got:
                    s["decoded"] = int(s["decoded"]) + 1  # type: ignore[call-overload]
                    counts[name] += 1
    result: dict[str, object] = {
        **machine(),
        "images_with_a_code": total,
        "per_folder": per_folder,
    }
    for name, s in stats.items():
        ms = s["ms"]
        fp_ms = s["fp_ms"]
        assert isinstance(ms, list) and isinstance(fp_ms, list)
        result[name] = {
            "decoded": s["decoded"],
            "rate": round(int(s["decoded"]) / total, 3),  # type: ignore[call-overload]
            "false_positives": s["false_positives"],
            "median_ms": round(statistics.median(ms), 2),
            "median_ms_no_code": round(statistics.median(fp_ms), 2),
            "total_s": round(sum(ms + fp_ms) / 1000, 2),
        }
    a, b = result["tokenstation"], result["zxing-cpp"]
    assert isinstance(a, dict) and isinstance(b, dict)
    result["ratio_median_time"] = round(a["median_ms"] / b["median_ms"], 2)
    result["ratio_median_time_no_code"] = round(a["median_ms_no_code"] / b["median_ms_no_code"], 2)
    result["big_images"] = big_images(args.reps)
    report(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
