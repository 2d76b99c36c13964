"""The one problem type: every error a user can meet says what happened, what to do next,
and of which kind it is.

``Problem`` is the base of the token layer's errors, the station's, the CLI's, the D-Bus
client's and the store's, credential, config, hand-over and folder errors. Each class
declares its ``kind`` once (a class attribute; a few, such as the station's and the
CLI's, take it per instance). The kind alone picks the exit code (``cli/common.py``
``CODE_FOR_KIND``) and the D-Bus error name (``bus/names.py`` ``ERRORS``), each in one
table, so a new error never chooses either by hand.

It lives in ``token/`` because the pure token layer derives from it and may import only
itself and the standard library; every other layer may import ``token/``. ``str(error)``
is the one line users see, as each class has always made it; ``message`` and
``next_step`` are kept apart for the CLI's --json, D-Bus replies and notifications.
Never a secret in either.
"""

from __future__ import annotations

from enum import StrEnum


class ProblemKind(StrEnum):
    """Why something was not done; the values are the station's error kinds of old."""

    #: Bad input: arguments, files, options, unknown ids or serials (exit 2, InvalidArgs).
    INVALID = "invalid"
    #: Refused for safety by tokenstation, nothing written (exit 4, Refused).
    REFUSED = "refused"
    #: Refused until the caller confirms, e.g. an untrusted host clock (exit 4).
    NEEDS_CONFIRMATION = "needs-confirmation"
    #: The bus policy refused the caller (exit 4; the bus's own AccessDenied).
    DENIED = "denied"
    #: No pcscd, reader or token; or the token asked for is not there (exit 3, NotPresent).
    NOT_PRESENT = "not-present"
    #: No bus, no daemon, no shared database now (exit 3; over D-Bus: Failed).
    UNAVAILABLE = "unavailable"
    #: The token or the queue is busy with another operation (exit 1, Busy).
    BUSY = "busy"
    #: The operation failed, or the token refused it (exit 1, Failed).
    FAILED = "failed"


class Problem(Exception):
    """An error with a sentence for people: ``message``, ``next_step`` and ``kind``."""

    kind: ProblemKind = ProblemKind.FAILED
    next_step: str = ""

    def __init__(
        self, message: str = "", next_step: str | None = None, *, kind: ProblemKind | None = None
    ) -> None:
        super().__init__(message)
        if next_step is not None:
            self.next_step = next_step
        if kind is not None:
            self.kind = kind

    @property
    def message(self) -> str:
        """What happened, without the next step."""
        return str(self.args[0]) if self.args else ""
