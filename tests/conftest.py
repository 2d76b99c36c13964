"""Shared fixtures: make tests/ importable for its helpers; mark each test with the real
parts it starts (``-m 'not postgres'``, ``-m bus``, ...), read from the fixtures it uses
and the helpers its module imports, so a marker cannot be forgotten."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


# -- a real PostgreSQL server, one per session -----------------------------------------------

import functools
import inspect
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


@pytest.fixture
def migrated_url(pg_url: str) -> str:
    """A fresh database on the session's server with this tokenstation's schema."""
    from tokenstation.daemon.storage import schema
    from tokenstation.daemon.storage.postgres import PostgresDatabase

    db = PostgresDatabase(pg_url)
    schema.migrate(db, schema.PARTS)
    db.close()
    return pg_url


# -- markers from what a test starts ------------------------------------------------------

#: marker -> (fixtures that start the part, names a module imports to start it itself)
PARTS: dict[str, tuple[set[str], set[str]]] = {
    "postgres": ({"pg_server", "pg_url"}, {"PgServer"}),
    "bus": ({"private_bus", "station_env", "cli_bus", "start_daemon", "desktop"}, {"PrivateBus"}),
    "pcsc": ({"pcsc_stack", "simulator", "cli", "station_env"}, {"PcscStack"}),
    "desktop": ({"desktop"}, set()),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Add the marker of each real part a test starts: through a fixture named above, or
    through a helper its own code or one of its fixtures' code calls."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        code = _source(getattr(item, "function", None))
        info = getattr(item, "_fixtureinfo", None)
        for defs in getattr(info, "name2fixturedefs", {}).values():
            code += "".join(_source(d.func) for d in defs)
        for marker, (starting_fixtures, helpers) in PARTS.items():
            if fixtures & starting_fixtures or any(h in code for h in helpers):
                item.add_marker(getattr(pytest.mark, marker))


@functools.cache
def _source(fn: object) -> str:
    try:
        return inspect.getsource(fn)  # type: ignore[arg-type]
    except (OSError, TypeError):
        return ""
