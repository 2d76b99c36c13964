"""What a decoder found in an image: shared by the pyzbar and zxing-cpp modules."""

from __future__ import annotations

from tokenstation.daemon.records import Frozen


class Symbol(Frozen):
    """One decoded code: its kind ("QR-Code" or "barcode") and its text."""

    kind: str
    text: str
    raw: bytes

    def __init__(self, kind: str, text: str, raw: bytes) -> None:
        self._set(kind=kind, text=text, raw=raw)


class DecodeResult(Frozen):
    """What an image held, which pass found it, and whether the time budget ran out."""

    symbols: tuple[Symbol, ...]
    pass_name: str
    size: tuple[int, int]
    frames: int
    timed_out: bool

    def __init__(
        self,
        symbols: tuple[Symbol, ...],
        pass_name: str,
        size: tuple[int, int],
        frames: int = 1,
        timed_out: bool = False,
    ) -> None:
        self._set(
            symbols=symbols, pass_name=pass_name, size=size, frames=frames, timed_out=timed_out
        )


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
