"""Messages joined from parts never double a full stop (issue 24: "token.. Give")."""

from __future__ import annotations

import pytest

from tokenstation.daemon.cli.common import fail
from tokenstation.daemon.token.errors import InvalidInput
from tokenstation.daemon.token.sentences import join_sentences


def test_parts_with_and_without_full_stops_join_with_one() -> None:
    assert join_sentences("a.", "b", "", "c?") == "a. b. c?"
    assert join_sentences("x..", "Give a shorter title.") == "x. Give a shorter title."


def test_a_refusal_whose_message_ends_a_sentence_reads_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A token error inside a message, then a next step: one full stop each."""
    inner = InvalidInput("the title is longer than 12 bytes.")
    assert ".." not in str(inner)
    with pytest.raises(SystemExit):
        fail(f"Molto2 X: {inner}", "Give a shorter title.", 2, False)
    line = capsys.readouterr().err
    assert ".." not in line and line.count("Nothing was written") == 1, line
    assert line.rstrip().endswith("Give a shorter title."), line
