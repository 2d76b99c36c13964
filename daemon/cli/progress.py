"""Progress of a long command on a terminal: one line on standard error that overwrites
itself ("generating seeds: 340 of 1000 (34 %), 2.1 s"), then a final line with the count
and the time taken ("generating seeds: 1000 done in 2.3 s").

Shown only when standard error is a terminal and ``--json`` was not given: into a pipe, a
file, CI or with ``--json`` nothing at all is written, so that output stays
byte-identical. Redrawn at most every :data:`INTERVAL_S` (the first and the last count
always). It never writes to standard output and changes nothing the command does or
exits with; a command that fails midway has its line erased before the error is printed.
The text holds counts and times only, never what is being counted.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType
    from typing import TextIO

#: The shortest time between two redraws: about 10 a second.
INTERVAL_S = 0.1


def on_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal (a closed or odd stream is not)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class Progress:
    """``with Progress("generating seeds", 1000, json=args.json) as bar: ... bar.update(n)``.

    Leaving the block normally writes the final line (:meth:`finish` may write it
    earlier with the count done); leaving it with an exception erases the line instead.
    """

    def __init__(
        self,
        what: str,
        total: int = 0,
        *,
        json: bool = False,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.total = total
        self.done = 0
        self.stream: TextIO = sys.stderr if stream is None else stream
        #: False: nothing is ever written (not a terminal, or --json).
        self.active = not json and on_terminal(self.stream)
        self._clock = clock
        self._started = clock()
        self._drawn_at: float | None = None
        self._width = 0  # of the line on screen, to blank what a shorter one leaves
        self._finished = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is None:
            self.finish()
        else:
            self.clear()

    def update(self, done: int, total: int | None = None) -> None:
        """``done`` of ``total`` (default: the total given before); redrawn when due."""
        if total is not None:
            self.total = total
        self.done = done
        if not self.active or self._finished:
            return
        now = self._clock()
        last = self.total > 0 and done >= self.total
        if self._drawn_at is not None and now - self._drawn_at < INTERVAL_S and not last:
            return
        self._drawn_at = now
        self._draw(f"{self.what}: {done} of {self.total}{self._percent(done)}, {self._took(now)}")

    def finish(self, done: int | None = None) -> None:
        """The final line: how many were done and how long it took (once)."""
        if done is not None:
            self.done = done
        if not self.active or self._finished:
            self._finished = True
            return
        self._finished = True
        self._draw(f"{self.what}: {self.done} done in {self._took(self._clock())}")
        self.stream.write("\n")
        self.stream.flush()

    def clear(self) -> None:
        """Erase the line (the command failed; its error comes next); no final line."""
        if self.active and not self._finished and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
        self._finished = True

    def _percent(self, done: int) -> str:
        return f" ({done * 100 // self.total} %)" if self.total > 0 else ""

    def _took(self, now: float) -> str:
        return f"{max(0.0, now - self._started):.1f} s"

    def _draw(self, text: str) -> None:
        pad = " " * max(0, self._width - len(text))
        self.stream.write("\r" + text + pad)
        self.stream.flush()
        self._width = len(text)
