"""The progress line: drawn on a terminal only, at most 10 times a second, counting up,
ended by a final line; erased when the command fails; nothing at all otherwise."""

from __future__ import annotations

import io
import os

import pytest

from tokenstation.daemon.cli.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_on_a_terminal_it_redraws_at_most_every_tenth_of_a_second_and_ends_with_a_line() -> None:
    term, clock = Terminal(), Clock()
    with Progress("generating seeds", 1000, stream=term, clock=clock) as bar:
        for n in range(1, 1001):
            clock.now += 0.001  # 1000 steps in 1 s: about 10 redraws
            bar.update(n)
    text = term.getvalue()
    draws = text.split("\r")[1:]
    assert 10 <= len(draws) <= 13, draws
    assert draws[0].rstrip() == "generating seeds: 1 of 1000 (0 %), 0.0 s"
    assert draws[-2].rstrip() == "generating seeds: 1000 of 1000 (100 %), 1.0 s"
    assert draws[-1].rstrip(" \n") == "generating seeds: 1000 done in 1.0 s"
    assert text.endswith("\n") and text.count("\n") == 1


def test_a_failure_erases_the_line_and_writes_no_final_line() -> None:
    term = Terminal()
    with pytest.raises(RuntimeError), Progress("exporting seeds", 5, stream=term) as bar:
        bar.update(1)
        raise RuntimeError("the store went away")
    text = term.getvalue()
    assert "done in" not in text and "\n" not in text
    assert text.endswith("\r") and text.split("\r")[-2].strip() == ""


@pytest.mark.parametrize("json", [False, True])
def test_into_a_pipe_or_with_json_nothing_is_written(json: bool) -> None:
    stream: io.StringIO = io.StringIO() if not json else Terminal()
    with Progress("generating seeds", 3, json=json, stream=stream) as bar:
        for n in (1, 2, 3):
            bar.update(n)
    assert not bar.active and stream.getvalue() == ""


def test_a_real_pseudo_terminal_is_a_terminal_and_a_pipe_is_not() -> None:
    master, slave = os.openpty()
    r, w = os.pipe()
    try:
        with open(slave, "w", closefd=False) as tty, open(w, "w", closefd=False) as pipe:
            assert Progress("x", 1, stream=tty).active
            assert not Progress("x", 1, stream=pipe).active
    finally:
        for fd in (master, slave, r, w):
            os.close(fd)
