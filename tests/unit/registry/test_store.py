"""The registry (daemon/registry/store.py): tokens, settings, drift history, operations,
clock kinds."""

from __future__ import annotations

import stat
from pathlib import Path

from tokenstation.daemon.registry.store import DriftPoint, Operation, Store
from tokenstation.daemon.token.settings import HmacAlgorithm, TokenSettings


def test_registry_keeps_tokens_settings_history_and_operations(tmp_path: Path) -> None:
    path = tmp_path / "state" / "registry.sqlite3"
    store = Store(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    store.seen("86596320000001", "C302-i", 100.0)
    store.seen("86596320000001", "C302-i", 200.0)
    store.record_drift("86596320000001", DriftPoint(200.0, 37.4, 0.01, "rollover", "r0"))
    assert store.token("86596320000001").settings is None  # type: ignore[union-attr]
    store.record_write(
        "86596320000001", TokenSettings(HmacAlgorithm.SHA256), 210.0, provisioned=False
    )
    store.record_operation(Operation("86596320000001", 210.0, "sync", "ok", "manual", 37.4, 0.02))
    store.close()

    again = Store(path)
    rec = again.token("86596320000001")
    assert rec is not None
    assert (rec.first_seen, rec.last_seen) == (100.0, 200.0)
    assert rec.settings == TokenSettings(HmacAlgorithm.SHA256)
    assert not rec.provisioned
    assert again.drift_history("86596320000001")[0].drift_s == 37.4
    assert again.clock_writes("86596320000001") == [210.0]
    assert [t.serial for t in again.tokens()] == ["86596320000001"]
    again.close()


def test_registry_remembers_each_tokens_clock_kind_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite3"
    store = Store(path)
    assert store.clock_kind("86596320000001") is None
    store.record_clock_kind("86596320000001", "phase-resetting", 100.0)
    store.record_clock_kind("86596320000001", "phase-keeping", 200.0)  # learnt again
    store.close()
    again = Store(path)
    assert again.clock_kind("86596320000001") == "phase-keeping"
    assert again.clock_kind("86596220000001") is None
    again.close()
