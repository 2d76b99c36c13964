"""The command's argparse classes: parsers and help told the terminal width.

Apart from the package so that a plain `tokenstation scan FILE...`, read without a
parser (cli/scan.py ``quick_args``), loads no argparse (about 2 ms of its start-up).
"""

from __future__ import annotations

import argparse
import sys

TYPE_CHECKING = False  # True for type checkers; saves importing typing at start-up
if TYPE_CHECKING:
    from typing import Any


def _columns() -> int:
    """``shutil.get_terminal_size().columns``, without importing shutil (and with it zlib,
    bz2 and lzma: about 3 ms of every command's start-up, paid by argparse for its width)."""
    import os

    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class Formatter(argparse.HelpFormatter):
    """argparse's help formatter, told the width as argparse would work it out."""

    def __init__(self, prog: str, *args: Any, **kwargs: Any) -> None:
        if len(args) < 3:
            kwargs.setdefault("width", _columns() - 2)
        super().__init__(prog, *args, **kwargs)


class RawFormatter(Formatter, argparse.RawDescriptionHelpFormatter):
    """The same, keeping the description's own line breaks (the command listing)."""


class Parser(argparse.ArgumentParser):
    """An argument parser (its commands' parsers too) with :class:`Formatter`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)
