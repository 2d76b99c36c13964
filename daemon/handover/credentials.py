"""Small private files (a pre-shared key, a password, an API token): regular, own, 0600.

A local loader until the project's shared credentials loader (issue 21) is folded in.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class CredentialProblem(Exception):
    """A key, password or token file cannot be used (the message says what to do)."""


def read_private(path: Path, what: str) -> str:
    """The text of a regular file (never through a link) owned by this user and not
    readable by others."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise CredentialProblem(f"the {what} file {path} does not exist") from None
    except OSError as exc:
        raise CredentialProblem(
            f"the {what} file {path} cannot be opened ({exc.strerror}); give a regular "
            "file, not a symbolic link"
        ) from None
    with os.fdopen(fd, "r", encoding="utf-8", errors="replace") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise CredentialProblem(f"the {what} file {path} is not a regular file")
        if st.st_uid != os.geteuid():
            raise CredentialProblem(f"the {what} file {path} belongs to another user")
        if st.st_mode & 0o077:
            raise CredentialProblem(
                f"the {what} file {path} may be read by others (mode "
                f"{stat.S_IMODE(st.st_mode):04o}): `chmod 600 {path}` first"
            )
        return f.read()
