"""The D-Bus library's own "unexpected error" line is one sentence at WARNING; its
traceback is kept at debug level only."""

from __future__ import annotations

import logging

import pytest

from tokenstation.daemon.bus import dbusio  # noqa: F401 (installs the filter)


def test_library_error_line_loses_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    logging.error(
        "got unexpected error processing a message: the shared database cannot be reached"
        '.\nTraceback (most recent call last):\n  File "/x.py", line 1'
    )
    warned = [r for r in caplog.records if r.name == "root"]
    assert [(r.levelname, r.getMessage()) for r in warned] == [
        (
            "WARNING",
            "got unexpected error processing a message: the shared database cannot be reached.",
        ),
    ]
    traced = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert traced and "Traceback" in traced[0].getMessage()
