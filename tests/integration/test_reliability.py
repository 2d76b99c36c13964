"""Kill -9 the daemon while files are ingested and jobs burned: nothing lost, nothing twice."""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import segno

from conftest import DaemonProc, SimToken, wait_until

pytestmark = pytest.mark.pcsc

TOKENS = ("86596320000011", "86596320000012")


def secret_b32(i: int) -> str:
    import base64

    return base64.b32encode(f"tokenstation-test-{i:05d}".encode()).decode().rstrip("=")


def make_files(staging: Path, n: int, pngs: int) -> list[Path]:
    files = []
    for i in range(n):
        uri = f"otpauth://totp/Load:user{i}?secret={secret_b32(i)}&issuer=Load"
        name = TOKENS[i] if i < len(TOKENS) else f"user{i:04d}"
        if i < pngs:
            path = staging / f"{name}.png"
            segno.make_qr(uri, error="m").save(path, scale=3, kind="png")
        else:
            path = staging / f"{name}.txt"
            path.write_text(uri + "\n")
        files.append(path)
    return files


def test_kill_9_at_random_points_loses_and_duplicates_nothing(
    station_env: dict[str, str],
    simulator: Callable[..., SimToken],
    tmp_path: Path,
) -> None:
    rng = random.Random(20261129)
    folder = tmp_path / "drop"
    conf = tmp_path / "station.toml"
    conf.write_text(
        f'mode = "station"\n[drop]\nfolder = "{folder}"\nstability_delay = 0.2\n'
        '[clock]\ntrust = "assume-synchronised"\n'
    )
    staging = tmp_path / "staging"
    staging.mkdir()
    files = make_files(staging, 200, pngs=50)
    db = tmp_path / "home" / "data" / "tokenstation" / "queue.sqlite3"
    starts = 0

    def start() -> DaemonProc:
        nonlocal starts
        starts += 1
        return DaemonProc(station_env, ["--config", str(conf)], tmp_path / f"d{starts}.log")

    daemon = start()
    # Phase 1: 200 files arrive in bursts; the daemon is killed -9 three times meanwhile.
    pending = list(files)
    rng.shuffle(pending)
    kills = sorted(rng.sample(range(20, 180), 3))
    moved = 0
    for kill_at in [*kills, len(pending)]:
        while moved < kill_at:
            os.rename(pending[moved], folder / pending[moved].name)
            moved += 1
            if moved % 25 == 0:
                time.sleep(rng.uniform(0.0, 0.3))
        if kill_at == len(pending):
            break
        time.sleep(rng.uniform(0.0, 0.6))
        daemon.kill9()
        daemon = start()

    def settled() -> bool:
        left = [p for p in folder.iterdir() if p.is_file() or p.is_symlink()]
        return not left and db.exists()

    wait_until(settled, 60.0, "every dropped file processed")

    # Phase 2: the two bound tokens arrive; the daemon is killed once while they burn.
    sims = [simulator("--serial", TOKENS[0], slot=0), simulator("--serial", TOKENS[1], slot=1)]
    time.sleep(rng.uniform(0.2, 1.2))
    daemon.kill9()
    daemon = start()
    time.sleep(3.0)  # measured again; bound jobs not yet burned get burned now

    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT state, source, serial, burned_serial FROM jobs").fetchall()
        files_seen = conn.execute("SELECT COUNT(*) FROM files").fetchone()[0]
    assert files_seen == 200
    assert len(rows) == 200  # one job per file: none lost, none twice
    sources = [r[1].split(" (")[0] for r in rows]
    assert len(set(sources)) == 200
    assert not [r for r in rows if r[0] == "burning"]
    assert not list((folder / "failed").iterdir())
    for sim, serial in zip(sims, TOKENS, strict=True):
        state = sim.fresh_state()
        burned = [r for r in rows if r[3] == serial and r[0] == "burned"]
        assert len(burned) <= 1
        assert state["seed_writes"] <= 1, f"{serial} burned {state['seed_writes']} times"
        bound = [r for r in rows if r[2] == serial]
        assert len(bound) == 1 and bound[0][0] in ("burned", "failed")
        if bound[0][0] == "burned":
            assert state["seed_writes"] == 1
    # Unbound jobs are never burned onto these (bound, hence not fresh) tokens.
    assert all(r[0] in ("queued",) for r in rows if not r[2])
    daemon.stop()
