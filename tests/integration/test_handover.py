"""Seeds made here on the real stack: generate, burn at a station, export, erase, nothing left."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pyotp
import pytest
from privacyidea_server import PrivacyIdea, PrivacyIdeaUnavailable
from pskc import PSKC

from conftest import BusWatcher, DaemonProc, SimToken, wait_until

pytestmark = pytest.mark.pcsc

SERIALS = ("86596320000011", "86596320000012", "86596320000013")
PSK_HEX = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
Start = Callable[..., tuple[DaemonProc, BusWatcher]]
Cli = Callable[..., subprocess.CompletedProcess[str]]


def station_config(folder: Path) -> str:
    return (
        f'mode = "station"\n[drop]\nfolder = "{folder}"\nstability_delay = 0.3\n'
        '[clock]\ntrust = "assume-synchronised"\n'
    )


def burn_batch(
    start_daemon: Start,
    simulator: Callable[..., SimToken],
    cli_bus: Cli,
    tmp_path: Path,
    extra_config: str = "",
) -> tuple[str, list[int], list[SimToken]]:
    """3 generated jobs burned at a station onto 3 fresh simulated tokens (codes shown)."""
    _daemon, bus = start_daemon(config=station_config(tmp_path / "drop") + extra_config)
    made = cli_bus("queue", "generate", "--count", "3", "--issuer", "ACME", "--json")
    assert made.returncode == 0, made.stderr
    answer = json.loads(made.stdout)
    batch, ids = answer["batch"], answer["job_ids"]
    assert len(ids) == 3 and set(answer) == {"ok", "batch", "job_ids"}
    sims = []
    for serial in SERIALS:
        sim = simulator("--serial", serial)
        done = bus.expect("BurnDone", serial=serial, timeout=15.0)
        assert done["job"]["id"] in ids
        sim.power_cycle()  # the display shows the new seed's code
        sims.append(sim)
        sim.stop()
    return batch, ids, sims


def write_key(path: Path, text: str) -> Path:
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


def test_a_generated_batch_is_burned_exported_as_pskc_and_erased_leaving_nothing(
    start_daemon: Start,
    simulator: Callable[..., SimToken],
    cli_bus: Cli,
    tmp_path: Path,
) -> None:
    batch, _ids, sims = burn_batch(start_daemon, simulator, cli_bus, tmp_path)
    status = cli_bus("status", "--json")
    assert json.loads(status.stdout)["handover"] == {"pending": 3}
    assert "3 burned token(s) wait" in cli_bus("status").stdout
    listed = cli_bus("queue", "list", "--all").stdout
    assert listed.count("handover: pending") == 3
    assert listed.count(f"  batch {batch}  handover") == 3

    out = tmp_path / "out" / "batch.pskcxml"
    out.parent.mkdir()
    psk = write_key(tmp_path / "psk.hex", PSK_HEX)
    exported = cli_bus(
        "export", "--format", "pskc", "--out", str(out), "--psk-file", str(psk), "--json"
    )
    assert exported.returncode == 0, exported.stderr
    report = json.loads(exported.stdout)
    assert report["serials"] == list(SERIALS) and report["left"] == []  # burn order
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    assert list(out.parent.iterdir()) == [out]  # no temporary left

    doc = PSKC(str(out))
    doc.encryption.key = bytes.fromhex(PSK_HEX)
    seeds = []
    for key, sim in zip(doc.keys, sims, strict=True):
        seed = key.secret
        seeds.append(seed)
        shown = sim.state()
        code = pyotp.TOTP(base64.b32encode(seed).decode()).at(shown["host_time"])
        assert shown["code"] == code, "the token shows the code of the exported seed"
    assert "handover: exported" in cli_bus("queue", "list", "--all").stdout

    erased = cli_bus("export", "--erase", "--batch", batch, "--json")
    assert json.loads(erased.stdout) == {"ok": True, "erased": 3, "batch": batch, "pending": 0}
    assert cli_bus("queue", "list", "--all").stdout.count("handover: erased") == 3
    again = cli_bus("export", "--format", "entra-csv", "--out", str(tmp_path / "x.csv"))
    assert again.returncode == 4 and "no burned token waits" in again.stderr

    out.unlink()  # the administrator's file, loaded and deleted
    kept = [p for p in (tmp_path / "home").rglob("*") if p.is_file()]
    kept += list(tmp_path.glob("daemon*.log"))
    assert any(p.name.endswith("queue.sqlite3") for p in kept)
    for seed in seeds:
        forms = [seed, seed.hex().encode(), seed.hex().upper().encode()]
        forms.append(base64.b32encode(seed).rstrip(b"="))
        for path in kept:
            data = path.read_bytes()
            assert not any(f in data for f in forms), f"a seed is in {path}"


def assert_codes(privacyidea: PrivacyIdea, sims: list[SimToken]) -> None:
    """privacyIDEA REJECTs a wrong code and ACCEPTs the one each token shows."""
    first = sims[0].state()["code"]
    wrong = f"{(int(first) + 500_000) % 1_000_000:06d}"
    assert privacyidea.validate(SERIALS[0], wrong) is False
    for serial, sim in zip(SERIALS, sims, strict=True):
        assert privacyidea.validate(serial, sim.state()["code"]) is True, serial


@pytest.fixture
def privacyidea(tmp_path: Path) -> Iterator[PrivacyIdea]:
    """A real privacyIDEA on loopback (installed into build/pi-venv on first use)."""
    server = PrivacyIdea(tmp_path / "pi")
    try:
        server.start()
    except PrivacyIdeaUnavailable as exc:
        server.stop()
        if os.environ.get("CI"):
            pytest.fail(f"privacyIDEA unavailable under CI: {exc}")
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.mark.privacyidea
def test_privacyidea_loads_the_exported_pskc_and_accepts_each_tokens_code(
    start_daemon: Start,
    simulator: Callable[..., SimToken],
    cli_bus: Cli,
    tmp_path: Path,
    privacyidea: PrivacyIdea,
) -> None:
    batch, _ids, sims = burn_batch(start_daemon, simulator, cli_bus, tmp_path)
    out = tmp_path / "batch.pskcxml"
    psk = write_key(tmp_path / "psk.hex", PSK_HEX)
    exported = cli_bus(
        "export",
        "--format",
        "pskc",
        "--out",
        str(out),
        "--psk-file",
        str(psk),
        "--batch",
        batch,
    )
    assert exported.returncode == 0, exported.stderr

    loaded = privacyidea.post(
        "/token/load/batch.pskcxml",
        {"type": "pskc", "psk": PSK_HEX},
        file=("batch.pskcxml", out.read_bytes()),
    )
    assert loaded["result"]["status"], loaded
    assert loaded["result"]["value"]["n_imported"] == 3, loaded

    assert_codes(privacyidea, sims)


@pytest.mark.privacyidea
def test_direct_push_enrols_each_token_in_privacyidea_and_erases_its_seed_here(
    start_daemon: Start,
    simulator: Callable[..., SimToken],
    cli_bus: Cli,
    tmp_path: Path,
    privacyidea: PrivacyIdea,
) -> None:
    token_file = write_key(tmp_path / "pi.token", privacyidea.admin_token())
    push = f'[handover.privacyidea]\nurl = "{privacyidea.url}"\napi_token_file = "{token_file}"\n'
    _batch, _ids, sims = burn_batch(start_daemon, simulator, cli_bus, tmp_path, push)
    wait_until(
        lambda: cli_bus("queue", "list", "--all").stdout.count("handover: pushed") == 3,
        30.0,
        "all three pushed",
    )
    assert json.loads(cli_bus("status", "--json").stdout)["handover"] == {"pushed": 3}
    assert_codes(privacyidea, sims)

    # No seed is held here any more (not even sealed), and the admin token is in no file
    # the station keeps (logs, databases) but its own 0600 token file.
    db = sqlite3.connect(tmp_path / "home" / "data" / "tokenstation" / "queue.sqlite3")
    with db:
        held = db.execute(
            "SELECT COUNT(*) FROM jobs WHERE secret IS NOT NULL OR handover_seed IS NOT NULL"
        ).fetchone()
    db.close()
    assert held == (0,)
    kept = [p for p in (tmp_path / "home").rglob("*") if p.is_file()]
    kept += list(tmp_path.glob("daemon*.log"))
    token = privacyidea.admin_token().encode()
    for path in kept:
        assert token not in path.read_bytes(), f"the admin token is in {path}"


def test_an_assignment_file_queues_one_job_per_user_bound_to_its_serial(
    start_daemon: Start, cli_bus: Cli, tmp_path: Path
) -> None:
    start_daemon(config=station_config(tmp_path / "drop").replace("station", "attended", 1))
    users = tmp_path / "users.csv"
    users.write_text("upn,serial\nalice@example.org,86596320000021\nbob@example.org,\n")
    made = cli_bus("queue", "generate", "--assign", str(users), "--issuer", "Contoso")
    assert made.returncode == 0, made.stderr
    assert (
        "Contoso:alice@example.org" in made.stdout
        and "bound to token 86596320000021" in made.stdout
    )
    jobs = json.loads(cli_bus("queue", "list", "--json").stdout)["jobs"]
    assert [(j["label"], j["serial"], j["upn"], j["algorithm"]) for j in jobs] == [
        ("Contoso:alice@example.org", "86596320000021", "alice@example.org", "SHA1"),
        ("Contoso:bob@example.org", "", "bob@example.org", "SHA1"),
    ]
    assert len({j["batch"] for j in jobs}) == 1

    users.write_text("upn,serial\nalice@example.org,1\n,2\n")
    bad = cli_bus("queue", "generate", "--assign", str(users))
    assert bad.returncode == 2 and "line 3: the upn is empty" in bad.stderr
    assert len(json.loads(cli_bus("queue", "list", "--json").stdout)["jobs"]) == 2
