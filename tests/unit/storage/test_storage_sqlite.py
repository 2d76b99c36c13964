"""This station's own SQLite files: a file of the previous layout is brought up to date."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tokenstation.daemon.provisioning.queue import JobQueue
from tokenstation.daemon.registry.store import Store
from tokenstation.daemon.storage import schema
from tokenstation.daemon.storage.database import SchemaMismatch


def test_a_registry_and_queue_of_the_previous_layout_keep_their_rows(tmp_path: Path) -> None:
    reg, q = tmp_path / "registry.sqlite3", tmp_path / "queue.sqlite3"
    old = sqlite3.connect(reg)
    old.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES ('schema_version', '1');"
        + schema.REGISTRY.migrations[0].format(id="INTEGER PRIMARY KEY", real="REAL", bytes="BLOB")
        + ";INSERT INTO tokens (serial, model, first_seen, last_seen, hmac, period, "
        "display_timeout, provisioned) VALUES ('86596320000001', 'C302', 1, 2, 'SHA-1', 30, 30, 1)"
    )
    old.close()
    old = sqlite3.connect(q)  # the queue had no meta table
    old.executescript(
        schema.QUEUE.migrations[0].format(id="INTEGER PRIMARY KEY", real="REAL", bytes="BLOB")
        + ";INSERT INTO jobs (state, secret, secret_hash, fingerprint, algorithm, period, "
        "created, updated) VALUES ('queued', x'00', 'h', 'f', 'SHA1', 30, 1, 1)"
    )
    old.close()
    store = Store(reg, station="desk")
    record = store.token("86596320000001")
    assert record is not None and record.settings is not None and record.provisioned
    store.seen("86596320000001", "C302", 3)
    assert store.token("86596320000001").last_station == "desk"  # type: ignore[union-attr]
    store.close()
    queue = JobQueue(q, station="desk")
    assert [j.state for j in queue.jobs()] == ["queued"]
    queue.close()
    db = sqlite3.connect(q)
    assert dict(db.execute("SELECT key, value FROM meta").fetchall()) == {
        "queue_schema_version": str(schema.QUEUE.version)
    }


def test_a_file_of_a_newer_tokenstation_is_refused(tmp_path: Path) -> None:
    Store(tmp_path / "registry.sqlite3").close()
    db = sqlite3.connect(tmp_path / "registry.sqlite3")
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(SchemaMismatch, match="newer than this tokenstation knows"):
        Store(tmp_path / "registry.sqlite3")
