"""From the configuration to open databases: this station's files or the shared one."""

from __future__ import annotations

from pathlib import Path

from tokenstation.daemon.config import Config
from tokenstation.daemon.storage.database import Database
from tokenstation.daemon.storage.secretbox import SecretBox, default_key_file


def key_file(cfg: Config) -> Path:
    """The store key file (``[store] key_file``, or the default under the config folder)."""
    return cfg.store.key_file if cfg.store.key_file is not None else default_key_file()


def shared_database(cfg: Config, *, start_away: bool = False) -> Database | None:
    """A connection to the shared database, or None when this station keeps its own files.

    Raises StoreUnavailable (the server cannot be reached, or psycopg is missing); with
    ``start_away`` a server that cannot be reached now is connected to in the background
    (a daemon starting while the database is down), psycopg missing still raises.
    """
    if not cfg.store.shared:
        return None
    from tokenstation.daemon.storage.postgres import PostgresDatabase

    return PostgresDatabase(cfg.store.url, start_away=start_away)


def secret_box(cfg: Config) -> SecretBox | None:
    """The key that seals seeds in the shared database (None for this station's own files).

    Raises KeyProblem when the key file is missing or unsafe.
    """
    return SecretBox.load(key_file(cfg)) if cfg.store.shared else None
