"""How an encrypted hand-over file is protected: a pre-shared key, a password, or nothing."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

PSK_BYTES = 16


class ProtectionProblem(Exception):
    """A key or password file cannot be used (the message says what to do)."""


@dataclass(frozen=True)
class Protection:
    """A 16-byte pre-shared key, a password, or plaintext (only when asked for)."""

    psk: bytes | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    plaintext: bool = False


def _read_private(path: Path, what: str) -> str:
    """A regular file, no link, not readable by others."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise ProtectionProblem(f"the {what} file {path} does not exist") from None
    except OSError as exc:
        raise ProtectionProblem(
            f"the {what} file {path} cannot be opened ({exc.strerror}); give a regular "
            "file, not a symbolic link"
        ) from None
    with os.fdopen(fd, "r", encoding="utf-8", errors="replace") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ProtectionProblem(f"the {what} file {path} is not a regular file")
        if st.st_mode & 0o077:
            raise ProtectionProblem(
                f"the {what} file {path} may be read by others (mode "
                f"{stat.S_IMODE(st.st_mode):04o}): `chmod 600 {path}` first"
            )
        return f.read()


def load_psk(path: Path) -> Protection:
    """A pre-shared key file: 32 hex digits (16 bytes, AES-128), whitespace ignored."""
    text = "".join(_read_private(path, "pre-shared key").split())
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != PSK_BYTES or len(text) != 2 * PSK_BYTES:
        raise ProtectionProblem(
            f"the pre-shared key file {path} must hold 32 hex digits (16 bytes): make one "
            f"with `python3 -c 'import secrets; print(secrets.token_hex(16))' > {path}`"
        )
    return Protection(psk=key)


def load_password(path: Path) -> Protection:
    """A password file: its first line."""
    first = _read_private(path, "password").splitlines()
    if not first or not first[0]:
        raise ProtectionProblem(f"the password file {path} is empty: write the password in it")
    return Protection(password=first[0])
