"""Private folders: 0700 when tokenstation makes them; a shared folder is refused, not chmodded."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tokenstation.daemon import xdg
from tokenstation.daemon.provisioning.queue import JobQueue
from tokenstation.daemon.registry.store import Store


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_folder_is_made_0700_and_an_existing_one_is_left_as_it_is(tmp_path: Path) -> None:
    """tokenstation never re-modes a folder it did not make (it may be /, /etc, /var/lib);
    the files it puts there are private on their own."""
    queue = JobQueue(tmp_path / "new" / "queue.sqlite3")
    queue.close()
    assert _mode(tmp_path / "new") == 0o700
    existing = tmp_path / "existing"
    existing.mkdir(mode=0o755)
    os.chmod(existing, 0o755)
    store = Store(existing / "registry.sqlite3")
    store.close()
    assert _mode(existing) == 0o755
    files = list(existing.iterdir())
    assert files
    assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}


def test_a_folder_every_user_may_write_in_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # what /tmp is
    with pytest.raises(xdg.SharedFolder) as refused:
        JobQueue(shared / "queue.sqlite3")
    assert "every user may write in" in str(refused.value)
    assert _mode(shared) == 0o1777
    assert list(shared.iterdir()) == []
