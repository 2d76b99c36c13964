"""Small private files tokenstation reads a secret from: the store key, a hand-over's
pre-shared key or password, privacyIDEA's API token.

One loader, one set of rules: a regular file (opened without following a link, with one
name only), owned by the user tokenstation runs as, readable by nobody else, in a folder
that nobody else may change (owned by that user or root, not writable by group or
others unless sticky). Each refusal says which rule and what to do.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tokenstation.daemon.token.problem import Problem, ProblemKind


class CredentialProblem(Problem):
    """A key, password or token file cannot be used (the message says what to do).

    ``missing``: the file does not exist (callers may say how to make it)."""

    kind = ProblemKind.FAILED

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


def read_private(path: Path, what: str) -> str:
    """The text of the private file ``path`` (``what`` names it in messages)."""
    _check_folder(path.parent, path, what)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise CredentialProblem(f"the {what} file {path} does not exist", missing=True) from None
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
            raise CredentialProblem(
                f"the {what} file {path} belongs to another user (uid {st.st_uid}); "
                f"tokenstation runs as uid {os.geteuid()}: `chown` it to that user"
            )
        if st.st_nlink != 1:
            raise CredentialProblem(
                f"the {what} file {path} has {st.st_nlink} names (hard links): another "
                "name may be readable elsewhere; copy it to a file of its own"
            )
        if st.st_mode & 0o077:
            raise CredentialProblem(
                f"the {what} file {path} may be read by others (mode "
                f"{stat.S_IMODE(st.st_mode):04o}): `chmod 600 {path}` first"
            )
        return f.read()


def _check_folder(folder: Path, path: Path, what: str) -> None:
    """Nobody but this user (or root) may rename or replace a file in ``folder``."""
    try:
        st = os.stat(folder)
    except FileNotFoundError:
        raise CredentialProblem(f"the {what} file {path} does not exist", missing=True) from None
    except OSError as exc:
        raise CredentialProblem(
            f"the folder of the {what} file {path} cannot be read ({exc.strerror})"
        ) from None
    if st.st_uid not in (os.geteuid(), 0):
        raise CredentialProblem(
            f"the {what} file {path} is in a folder of another user (uid {st.st_uid}), who "
            "could replace it: keep it in a folder of your own (0700)"
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not st.st_mode & stat.S_ISVTX:
        raise CredentialProblem(
            f"the {what} file {path} is in a folder others may write in (mode "
            f"{stat.S_IMODE(st.st_mode):04o}), where it could be replaced: keep it in a "
            "folder of your own (0700)"
        )
