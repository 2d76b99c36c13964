"""Shared fixtures: make tests/ importable for its helpers."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


# -- a real PostgreSQL server, one per session -----------------------------------------------

import os
from collections.abc import Iterator

import pytest
from pgserver import PgServer, PgUnavailable


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """Debian's PostgreSQL in a temp dir, on a private socket, fsync off; stopped at the end."""
    try:
        server = PgServer().start()
    except PgUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL missing under CI: {exc}")
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A fresh empty database on the session's server."""
    return pg_server.new_database()
