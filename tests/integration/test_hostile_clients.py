"""Hostile files and clients against the bus side of the real daemon (private dbus-daemon,
pcscd, vpcd, simulator): bounded signals, paged job lists, bounded and typed arguments,
descriptors instead of paths, the live code kept off broadcasts, and a daemon that
exits non-zero rather than running on unreachable."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tokenstation.daemon.bus import dbusio
from tokenstation.daemon.bus.client import DaemonError
from tokenstation.daemon.bus.names import BUS_NAME, INTERFACE, OBJECT_PATH
from tokenstation.daemon.simulator.privatebus import PrivateBus, isolated_env
from tokenstation.daemon.simulator.stack import PcscStack

from conftest import TEST_SECRETS, TRANSCRIPT, BusWatcher, DaemonProc, SimToken, wait_until

pytestmark = pytest.mark.pcsc

C302 = "86596320000001"
Start = Callable[..., tuple[DaemonProc, BusWatcher]]
Cli = Callable[..., subprocess.CompletedProcess[str]]


def b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode().rstrip("=")


def config(folder: Path, extra: str = "") -> str:
    return (
        f'[drop]\nfolder = "{folder}"\nstability_delay = 0.2\n{extra}'
        '[clock]\ntrust = "assume-synchronised"\n'
    )


def csv_rows(n: int) -> str:
    # Distinct secrets that are not the test secrets: 20 bytes from the row number.
    return "".join(
        f"{86596320000000 + i},{b32(i.to_bytes(4, 'big') * 5)}\n" for i in range(1, n + 1)
    )


def raw_call(bus: BusWatcher, member: str, signature: str, body: list[Any], **kw: Any) -> Any:
    async def call() -> Any:
        return await dbusio.call(
            bus.client.bus, BUS_NAME, OBJECT_PATH, INTERFACE, member, signature, body, **kw
        )

    return bus.run(call())


def test_a_huge_batch_is_refused_whole_and_a_big_one_makes_a_small_signal(
    start_daemon: Start, cli_bus: Cli, tmp_path: Path
) -> None:
    folder = tmp_path / "drop"
    daemon, bus = start_daemon(config=config(folder, "max_text_size = 8000000\n"))
    wait_until(folder.exists, 5.0)
    (folder / "huge.csv").write_text(csv_rows(100_000))
    huge = bus.expect("FileTaken", file="huge.csv", timeout=30)
    assert huge["verdict"] == "rejected" and "max_jobs_per_file" in huge["reason"]
    assert huge["queued"] == [] and bus.run(bus.client.status())["queue_length"] == 0
    (folder / "big.csv").write_text(csv_rows(3000))  # the default limit: taken
    big = bus.expect("FileTaken", file="big.csv", timeout=60)
    assert big["verdict"] == "ok"
    assert len(big["queued"]) == 20 and big["queued_count"] == 3000
    assert len(big["accounts"]) == 20 and big["accounts_count"] == 3000
    assert len(json.dumps(big)) < 50_000
    # Paged: the CLI pages through all of them; one page is never more than 1000.
    page = bus.run(bus.client.jobs_page(0, 100_000))
    assert page["total"] == 3000 and len(page["jobs"]) == 1000 and page["limit"] == 1000
    page = bus.run(bus.client.jobs_page(2990, 0, ["queued"]))
    assert [j["id"] for j in page["jobs"]] == list(range(2991, 3001))
    listed = cli_bus("queue", "list")
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 3000
    assert len(json.loads(cli_bus("queue", "list", "--json").stdout)["jobs"]) == 3000
    assert daemon.proc.poll() is None and bus.run(bus.client.running())


def test_long_and_mistyped_arguments_are_refused_without_an_echo(
    start_daemon: Start, tmp_path: Path
) -> None:
    _daemon, bus = start_daemon(config=config(tmp_path / "drop"))
    long = "7" * 10_000_000
    for call in (
        bus.client.token(long),
        bus.client.burn_job(1, long),
        bus.client.skip_job(1, long),
        bus.client.sync(long),
        bus.client.sync("", reader=long),
    ):
        with pytest.raises(DaemonError) as err:
            bus.run(call, timeout=60)
        assert err.value.kind == "invalid" and len(err.value.text) < 300, err.value.text[:300]
        assert "over the limit" in err.value.text
    for options, words in (
        ({"algorithm": "sha1", "period": "30", "display_timeout": 30}, "period: must be a whole"),
        ({"confirm_untrusted_clock": "false"}, "must be true or false, got a string"),
        ({"reader": 5}, "reader: must be a string"),
    ):
        with pytest.raises(DaemonError) as err:
            bus.run(bus.client.sync("", **options))
        assert err.value.kind == "invalid" and words in err.value.text
    with pytest.raises(DaemonError):  # bad page arguments: a clear error, not a crash
        bus.run(bus.client.jobs_page(0, 10, ["all of them"]))
    assert bus.run(bus.client.running())


def daemon_fds(daemon: DaemonProc) -> int:
    return len(os.listdir(f"/proc/{daemon.proc.pid}/fd"))


def test_ingest_file_reads_only_what_the_caller_opened(
    start_daemon: Start, cli_bus: Cli, tmp_path: Path, station_env: dict[str, str]
) -> None:
    daemon, bus = start_daemon(config=config(tmp_path / "drop"))
    work = tmp_path / "work"
    work.mkdir()
    (work / "alice.txt").write_text(
        f"otpauth://totp/ACME:alice?secret={b32(TEST_SECRETS[0])}&issuer=ACME\n"
    )
    # A relative path is the caller's: resolved in its own folder, opened by it.
    added = subprocess.run(
        [sys.executable, "-m", "tokenstation.daemon", "queue", "add", "alice.txt", "--json"],
        env=station_env,
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
    )
    TRANSCRIPT.append(("tokenstation queue add", added.stdout + added.stderr))
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["queued"][0]["label"] == "ACME:alice"
    assert (work / "alice.txt").exists()
    # The old form (a path the daemon would open) is gone.
    with pytest.raises(Exception, match=r"(?i)signature|InvalidArgs|invalid"):
        raw_call(bus, "IngestFile", "s", [str(work / "alice.txt")])
    # Not a regular file, or not open for reading: refused, said why.
    r, w = os.pipe()
    try:
        with pytest.raises(Exception, match="FIFO"):
            raw_call(bus, "IngestFile", "hs", [0, "x.txt"], unix_fds=[r])
    finally:
        os.close(r)
        os.close(w)
    wfd = os.open(work / "alice.txt", os.O_WRONLY)
    try:
        with pytest.raises(Exception, match=r"cannot be read|Bad file"):
            raw_call(bus, "IngestFile", "hs", [0, "y.txt"], unix_fds=[wfd])
    finally:
        os.close(wfd)
    # Descriptors attached to other calls are closed, not kept: the daemon's count stays.
    before = daemon_fds(daemon)
    for _ in range(50):
        fd = os.open(work / "alice.txt", os.O_RDONLY)
        try:
            raw_call(bus, "GetStatus", "", [], unix_fds=[fd])
        finally:
            os.close(fd)
    assert daemon_fds(daemon) <= before + 2


def test_the_live_code_goes_to_the_caller_never_into_a_system_bus_broadcast(
    start_daemon: Start, simulator: Callable[..., SimToken], tmp_path: Path
) -> None:
    folder = tmp_path / "drop"
    _daemon, bus = start_daemon("--bus", "system", config=config(folder))
    wait_until(folder.exists, 5.0)
    (folder / "bob.txt").write_text(
        f"otpauth://totp/ACME:bob?secret={b32(TEST_SECRETS[1])}&issuer=ACME\n"
    )
    [job] = bus.expect("FileTaken", file="bob.txt")["queued"]
    simulator("--serial", C302)
    bus.expect("BurnOffered", serial=C302)
    reply = bus.run(bus.client.burn_job(job["id"], C302))
    assert len(str(reply["expected_code"])) == 6  # the caller gets it
    done = bus.expect("BurnDone", serial=C302)
    assert "expected_code" not in done and "expected_code_valid_until" not in done
    assert done["job"]["id"] == job["id"]


def test_the_daemon_exits_non_zero_when_it_loses_its_bus(
    pcsc_stack: PcscStack, tmp_path: Path
) -> None:
    own = PrivateBus().start()
    conf = tmp_path / "c.toml"
    conf.write_text(config(tmp_path / "drop"))
    env = isolated_env(pcsc_stack.env(), own.address, tmp_path / "home")
    try:
        daemon = DaemonProc(env, ["--config", str(conf)], tmp_path / "lost.log")
    except BaseException:
        own.stop()
        raise
    own.stop()
    try:
        daemon.proc.wait(15)
    except subprocess.TimeoutExpired:
        daemon.stop()
        raise AssertionError("the daemon kept running without its bus") from None
    assert daemon.stop() == 1
    assert "lost the connection to the bus" in daemon.log_path.read_text()
