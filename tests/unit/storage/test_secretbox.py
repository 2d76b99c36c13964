"""The key file: made whole or not at all, never over an existing one."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tokenstation.daemon.storage import secretbox
from tokenstation.daemon.storage.secretbox import KeyProblem, SecretBox, init_key


def test_a_stop_while_the_key_is_written_leaves_no_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop (here: fsync failing) before the key is whole leaves no file that every
    later start would refuse as malformed; the next start makes a key."""
    path = tmp_path / "keys" / "store.key"

    def stopped(_fd: int) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(secretbox.os, "fsync", stopped)
    with pytest.raises(OSError):
        init_key(path)
    monkeypatch.undo()
    assert not path.exists() and list(path.parent.iterdir()) == []
    init_key(path)
    SecretBox.load(path)  # whole


def test_a_key_is_0600_and_never_made_over_an_existing_one_or_a_link(tmp_path: Path) -> None:
    path = init_key(tmp_path / "store.key")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_bytes()
    with pytest.raises(KeyProblem, match="exists already"):
        init_key(path)
    assert path.read_bytes() == before
    link = tmp_path / "link.key"
    os.symlink(tmp_path / "elsewhere.key", link)
    with pytest.raises(KeyProblem, match="exists already"):
        init_key(link)
    assert not (tmp_path / "elsewhere.key").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.key", "store.key"]
