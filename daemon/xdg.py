"""Where tokenstation keeps things: XDG base directories (config, state, data), made 0700."""

from __future__ import annotations

import os
from pathlib import Path

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


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if needed and make it 0700; return it."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path
