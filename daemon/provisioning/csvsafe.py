"""CSV cells that a spreadsheet cannot run: every CSV tokenstation writes goes through here.

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a
formula (or becomes one) in Excel, LibreOffice and Google Sheets ("CSV injection").
Such a cell is written with a leading apostrophe, which spreadsheets show as text and
people read past; the value stays recognisable.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any, TextIO

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """``value`` as a CSV cell that no spreadsheet evaluates."""
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_STARTS):
        return "'" + text
    return text


class SafeWriter:
    """``csv.writer`` whose every cell is neutralised."""

    def __init__(self, f: TextIO, **fmt: Any) -> None:
        self._w = csv.writer(f, **fmt)

    def writerow(self, row: Iterable[object]) -> None:
        """Write one row."""
        self._w.writerow([safe_cell(v) for v in row])
