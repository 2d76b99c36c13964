"""Where tokenstation keeps things: XDG base directories (config, state, data), made 0700."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tokenstation.daemon.token.problem import Problem, ProblemKind

APP = "tokenstation"


def _base(env: str, fallback: str) -> Path:
    value = os.environ.get(env, "")
    # The spec says relative paths are invalid and must be ignored.
    if value and os.path.isabs(value):
        return Path(value)
    return Path.home() / fallback


def config_dir() -> Path:
    """$XDG_CONFIG_HOME/tokenstation (~/.config/tokenstation)."""
    return _base("XDG_CONFIG_HOME", ".config") / APP


def state_dir() -> Path:
    """$XDG_STATE_HOME/tokenstation (~/.local/state/tokenstation): registry and history."""
    return _base("XDG_STATE_HOME", ".local/state") / APP


def data_dir() -> Path:
    """$XDG_DATA_HOME/tokenstation (~/.local/share/tokenstation): drop folder, queue."""
    return _base("XDG_DATA_HOME", ".local/share") / APP


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/tokenstation (~/.cache/tokenstation): drawn icons."""
    return _base("XDG_CACHE_HOME", ".cache") / APP


def config_file() -> Path:
    """The default configuration file."""
    return config_dir() / "config.toml"


def registry_file(state: Path | None = None) -> Path:
    """The registry's path under ``state`` (default: state_dir()); nothing is created."""
    return (state if state is not None else state_dir()) / "registry.sqlite3"


class SharedFolder(Problem, OSError):
    """A folder tokenstation was told to keep private things in is shared with other users."""

    kind = ProblemKind.INVALID


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) 0700 if it is missing; return it.

    An existing folder is used as it is, never re-moded: tokenstation did not make it
    (it may be ``/``, ``/etc``, ``/var/lib`` or a folder others rely on), and the files it
    puts there are private on their own (every command runs with umask 077, see
    :func:`hardening.private_files`). One that any user may write in (``/tmp``, a
    world-writable share) is refused with :class:`SharedFolder`: files that hold seeds do
    not belong where others can swap them.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = os.stat(path)
    if st.st_mode & (stat.S_IWOTH | stat.S_ISVTX):
        raise SharedFolder(
            f"{path} is a folder every user may write in (mode {stat.S_IMODE(st.st_mode):o}); "
            "tokenstation keeps seeds and its state only in private folders: name a folder of "
            "your own (it is created 0700)"
        )
    return path
