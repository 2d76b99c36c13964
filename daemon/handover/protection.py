"""How an encrypted hand-over file is protected: a pre-shared key, a password, or nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tokenstation.daemon.credentials import CredentialProblem, read_private

PSK_BYTES = 16


#: A key or password file cannot be used (the message says what to do).
ProtectionProblem = CredentialProblem


@dataclass(frozen=True)
class Protection:
    """A 16-byte pre-shared key, a password, or plaintext (only when asked for)."""

    psk: bytes | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    plaintext: bool = False


def load_psk(path: Path) -> Protection:
    """A pre-shared key file: 32 hex digits (16 bytes, AES-128), whitespace ignored."""
    text = "".join(read_private(path, "pre-shared key").split())
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
    first = read_private(path, "password").splitlines()
    if not first or not first[0]:
        raise ProtectionProblem(f"the password file {path} is empty: write the password in it")
    return Protection(password=first[0])
