"""Reading a command's plainest form without argparse.

`tokenstation scan FILE... [--json]` and `tokenstation status [--json]` are what scripts
and monitoring run most; argparse (with the gettext and locale it loads) and building
the parsers cost each about 4 ms of a start-up that is otherwise a few tens. A command
with such a form (``QUICK`` in the command table) has a ``quick_args(argv)`` that reads
it with :func:`namespace` or answers None; the parser then reads the words (and words
any error) as ever.
"""

from __future__ import annotations

TYPE_CHECKING = False  # True for type checkers; saves importing typing at start-up
if TYPE_CHECKING:
    import argparse


def namespace(command: str, defaults: dict[str, object], **words: object) -> argparse.Namespace:
    """What the parser would give for ``command`` with these words and defaults."""
    from types import SimpleNamespace

    args = SimpleNamespace(log_level=None, command=command, **words, **defaults)
    return args  # type: ignore[return-value]  # what the commands read of it, alike
