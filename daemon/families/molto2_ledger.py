"""Which account this station burned into which profile of which Molto2 (no secrets).

A small JSON file, 0600 in the 0700 state folder: serial -> profile -> account label,
seed fingerprint and time. The device itself only knows a 12-byte title; this keeps
the full account name for `tokenstation profiles`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from tokenstation.daemon import xdg

FILE_NAME = "molto2-profiles.json"


class Ledger:
    """Read-modify-write access to the ledger file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else xdg.state_dir() / FILE_NAME

    def _load(self) -> dict[str, dict[str, dict[str, Any]]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _save(self, data: dict[str, dict[str, dict[str, Any]]]) -> None:
        xdg.private_dir(self.path.parent)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True)
        os.replace(tmp, self.path)

    def accounts(self, serial: str) -> dict[int, dict[str, Any]]:
        """profile -> what this station burned there."""
        return {int(k): v for k, v in self._load().get(serial, {}).items()}

    def record(self, serial: str, profile: int, account: str, fingerprint: str) -> None:
        """Note a burn."""
        self.record_many(serial, [(profile, account, fingerprint)])

    def record_many(self, serial: str, burns: list[tuple[int, str, str]]) -> None:
        """Note the burns of one card session, (profile, account, fingerprint) each, in one
        rewrite of the file."""
        data = self._load()
        at = int(time.time())
        for profile, account, fingerprint in burns:
            data.setdefault(serial, {})[str(profile)] = {
                "account": account,
                "secret_fingerprint": fingerprint,
                "burned_at": at,
            }
        self._save(data)

    def forget(self, serial: str, profile: int) -> None:
        """Note a delete."""
        data = self._load()
        if data.get(serial, {}).pop(str(profile), None) is not None:
            self._save(data)


def station_ledger(state_dir: Path | None) -> Ledger:
    """The ledger of a station whose configured state folder is ``state_dir`` (None: the
    XDG state folder): the daemon and the commands beside it share this one file."""
    return Ledger((state_dir if state_dir is not None else xdg.state_dir()) / FILE_NAME)
