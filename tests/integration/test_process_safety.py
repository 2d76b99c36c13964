"""What a station does to the system around it: it never re-modes a folder it did not make
(an existing 0755 state, data, drop or key folder stays 0755, its own files inside are
0600), and the running daemon can leave no core dump (RLIMIT_CORE 0, not dumpable)."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

from conftest import BusWatcher, DaemonProc


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _existing(path: Path) -> Path:
    path.mkdir(parents=True)
    os.chmod(path, 0o755)
    return path


def test_existing_folders_keep_their_mode_and_files_are_private(
    start_daemon: Callable[..., tuple[DaemonProc, BusWatcher]],
    cli_bus: Callable[..., subprocess.CompletedProcess[str]],
    tmp_path: Path,
) -> None:
    keys = _existing(tmp_path / "keys")
    made = cli_bus("store", "init-key", "--key-file", str(keys / "store.key"))
    assert made.returncode == 0, made.stderr
    state = _existing(tmp_path / "state")
    drop = _existing(tmp_path / "drop")
    config = f'[drop]\nfolder = "{drop}"\n'
    daemon, _watcher = start_daemon("--state-dir", str(state), config=config)
    assert cli_bus("status").returncode == 0
    daemon.stop()
    for folder in (keys, state, drop):
        assert _mode(folder) == 0o755, folder
    own = [p for p in [*keys.iterdir(), *state.iterdir()] if p.is_file()]
    assert own, "the daemon and init-key wrote nothing where they were told"
    assert {p.name: _mode(p) for p in own} == {p.name: 0o600 for p in own}


def test_the_daemon_leaves_no_core_dump(
    start_daemon: Callable[..., tuple[DaemonProc, BusWatcher]],
) -> None:
    daemon, _watcher = start_daemon()
    pid = daemon.proc.pid
    limits = Path(f"/proc/{pid}/limits").read_text()
    core = next(line for line in limits.splitlines() if line.startswith("Max core file size"))
    assert core.split()[4:6] == ["0", "0"], core
    # Not dumpable (PR_SET_DUMPABLE 0), as the daemon read it back from the kernel: as
    # root here, /proc would not show it (its files are root's either way).
    assert "no core dumps: RLIMIT_CORE 0, not dumpable" in daemon.output()
