"""Seeds in a shared database are sealed by the stations: AES-256-GCM with a key file.

Every station of a shared database holds the same key file (``[store] key_file``, made
once by ``tokenstation store init-key`` and copied, 0600, to the others). A sealed seed
is ``nonce (12 bytes) || ciphertext+tag``, its associated data the job id and the
serial it is bound to, so a sealed value moved to another row does not open. The
duplicate check uses an HMAC of the seed under the same key, never a bare hash: the
database and its dumps hold nothing that reveals or confirms a seed without the key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import tempfile
from pathlib import Path

from tokenstation.daemon import xdg
from tokenstation.daemon.credentials import CredentialProblem, read_private
from tokenstation.daemon.token.crypto import aes_gcm_open, aes_gcm_seal
from tokenstation.daemon.token.problem import Problem, ProblemKind

KEY_BYTES = 32
NONCE_BYTES = 12
INIT_KEY_COMMAND = "tokenstation store init-key"
_HEADER = "tokenstation store key v1\n"


class KeyProblem(Problem):
    """The key file is missing, unsafe or unreadable (the message says what to do)."""

    kind = ProblemKind.FAILED


def default_key_file() -> Path:
    """$XDG_CONFIG_HOME/tokenstation/store.key."""
    return xdg.config_dir() / "store.key"


def init_key(path: Path) -> Path:
    """Create a new random key file (0600 in a 0700 folder); never overwrites one.

    The key is written whole to a temporary file first and then linked into place, so
    a stop at any moment (or another process reading it meanwhile) finds a whole key
    or none, never an empty or cut one that every later use refuses."""
    xdg.private_dir(path.parent)
    key = os.urandom(KEY_BYTES)
    fd, tmp = tempfile.mkstemp(prefix=".key-", dir=path.parent)  # 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(_HEADER + base64.b64encode(key).decode() + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # fails on any existing name, a link included
        except FileExistsError:
            raise KeyProblem(
                f"{path} exists already: a new key would make every queued seed unreadable; "
                "keep it (copy it to the other stations) or move it away first"
            ) from None
    finally:
        os.unlink(tmp)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def _derive(key: bytes, purpose: bytes) -> bytes:
    return hmac.new(key, b"tokenstation " + purpose, hashlib.sha256).digest()


class SecretBox:
    """Seal and open seeds; keyed HMAC for recognising duplicates."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise KeyProblem(f"a store key is {KEY_BYTES} bytes, got {len(key)}")
        self._seal_key = _derive(key, b"seal")
        self._hash_key = _derive(key, b"hash")
        self.key_id = _derive(key, b"key id").hex()[:16]

    @classmethod
    def load(cls, path: Path) -> SecretBox:
        """Read the key file (:func:`credentials.read_private`: a regular file of this
        user's, readable by nobody else, in a folder nobody else may change); refused
        when missing, loose or malformed."""
        try:
            text = read_private(path, "store key")
        except CredentialProblem as exc:
            if exc.missing:
                raise KeyProblem(
                    f"the store key file {path} does not exist: create it once with "
                    f"`{INIT_KEY_COMMAND}` and copy it (0600) to every station of the database"
                ) from None
            raise KeyProblem(str(exc)) from None
        if not text.startswith(_HEADER):
            raise KeyProblem(f"{path} is not a tokenstation store key (made by {INIT_KEY_COMMAND})")
        try:
            key = base64.b64decode(text[len(_HEADER) :].strip(), validate=True)
        except ValueError:
            raise KeyProblem(f"{path}: the key is not valid base64") from None
        return cls(key)

    def seal(self, plain: bytes, job_id: int, serial: str) -> bytes:
        """Encrypt a seed for job ``job_id`` (bound to ``serial``, or "")."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + aes_gcm_seal(self._seal_key, nonce, plain, _associated(job_id, serial))

    def open(self, sealed: bytes, job_id: int, serial: str) -> bytes | None:
        """The seed, or None when this key (or this row) did not seal it."""
        nonce, body = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
        return aes_gcm_open(self._seal_key, nonce, body, _associated(job_id, serial))

    def digest(self, plain: bytes) -> str:
        """A keyed hash of a seed (for duplicates), meaningless without the key."""
        return hmac.new(self._hash_key, plain, hashlib.sha256).hexdigest()


def _associated(job_id: int, serial: str) -> bytes:
    return f"tokenstation job {job_id} serial {serial}".encode()
