"""What a decoder found in an image: shared by the pyzbar and zxing-cpp modules."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Symbol:
    """One decoded code: its kind ("QR-Code" or "barcode") and its text."""

    kind: str
    text: str
    raw: bytes


@dataclass(frozen=True)
class DecodeResult:
    """What an image held, which pass found it, and whether the time budget ran out."""

    symbols: tuple[Symbol, ...]
    pass_name: str
    size: tuple[int, int]
    frames: int = 1
    timed_out: bool = False


def bytes_to_text(data: bytes) -> str:
    """QR byte-mode payload -> text: UTF-8, else Shift_JIS, else ISO-8859-1."""
    for encoding in ("utf-8", "shift_jis"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def unique(symbols: list[Symbol]) -> tuple[Symbol, ...]:
    """``symbols`` without repeats (the same code seen twice), first seen first."""
    return tuple(dict.fromkeys(symbols))
