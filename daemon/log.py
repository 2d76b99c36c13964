"""Logging set-up: levels, format, and the TRAFFIC level for APDU traces."""

from __future__ import annotations

import logging
import sys

#: Below DEBUG: every APDU exchanged with a card. Off unless asked for.
TRAFFIC = 5
logging.addLevelName(TRAFFIC, "TRAFFIC")

_BANNER = (
    "TRAFFIC logging is on: APDUs are logged. They reveal token serials and clocks; "
    "seed writes are redacted, but keep such logs private."
)


def parse_level(name: str) -> int:
    """'traffic', 'debug', 'info', 'warning', 'error' (any case) -> a logging level."""
    key = name.strip().upper()
    if key == "TRAFFIC":
        return TRAFFIC
    level = logging.getLevelName(key)
    if not isinstance(level, int):
        raise ValueError(f"unknown log level {name!r}; use traffic, debug, info, warning or error")
    return level


def setup(level: int = logging.WARNING, stream: object = None) -> None:
    """Configure the root logger once for a command-line process."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if level <= TRAFFIC:
        logging.getLogger("tokenstation").warning(_BANNER)
