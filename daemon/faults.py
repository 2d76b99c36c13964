"""Crash points for tests: die at a named step, as a power cut would.

Only the tests set ``TOKENSTATION_TEST_CRASH_AT``; with it unset (always, in real use)
:func:`crash_point` does nothing. Integration tests use it to kill the daemon at every
step of a burn; unit tests pass their own hook that raises instead.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

CRASH_ENV = "TOKENSTATION_TEST_CRASH_AT"
#: The exit status of a process that died at a crash point.
CRASH_STATUS = 86

CrashPoint = Callable[[str], None]

log = logging.getLogger(__name__)


def crash_point(step: str) -> None:
    """Exit at once, without cleanup, when the test environment names ``step``."""
    if os.environ.get(CRASH_ENV) == step:
        log.critical("test crash point %s: exiting now", step)
        logging.shutdown()
        os._exit(CRASH_STATUS)
