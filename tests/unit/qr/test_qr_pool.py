"""The decoder pool's workers: started by the first image, stopped when idle, boxed.

Real worker processes (daemon/qr/worker.py) with real zxing-cpp and Pillow; the idle
time is injected (``reap_idle(now=...)``), nothing sleeps a minute or is timed.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import segno
from PIL import Image

from tokenstation.daemon.qr import image as imagefile
from tokenstation.daemon.qr import pool as poolmod
from tokenstation.daemon.qr.pool import DecodePool

URI = "otpauth://totp/Bitbucket:alice?secret=JBSWY3DPEHPK3PXP&issuer=Bitbucket"


def qr_png(text: str = URI) -> bytes:
    buf = io.BytesIO()
    segno.make_qr(text, error="m").save(buf, kind="png", scale=4)
    return buf.getvalue()


def blank_png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (width, height), 255).save(buf, format="PNG")
    return buf.getvalue()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_until(cond: object, timeout: float = 10.0) -> bool:
    assert callable(cond)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return bool(cond())


@pytest.fixture
def pool() -> Iterator[DecodePool]:
    p = DecodePool(workers=2)
    try:
        yield p
    finally:
        p.close()


def texts(p: DecodePool, data: bytes) -> list[str]:
    return [s.text for s in p.decode(data).symbols]


def test_no_worker_runs_until_an_image_comes_and_none_after_the_idle_time(
    pool: DecodePool,
) -> None:
    assert pool.pids() == []
    assert "running now: 0" in pool.describe() and "first image" in pool.describe()
    assert texts(pool, qr_png()) == [URI]
    (pid,) = pool.pids()  # one image, one worker: the second is not started for nothing
    assert alive(pid) and "zxing-cpp" in pool.describe()
    # Not idle long enough yet: kept.
    assert pool.reap_idle(now=time.monotonic() + pool.idle_s - 5) == 0 and alive(pid)
    assert pool.reap_idle(now=time.monotonic() + pool.idle_s + 1) == 1
    assert pool.pids() == [] and not alive(pid)
    # The next image starts a fresh one.
    assert texts(pool, qr_png()) == [URI]
    (again,) = pool.pids()
    assert again != pid


def test_the_pool_stops_idle_workers_on_its_own() -> None:
    p = DecodePool(workers=2, idle_s=0.2)
    try:
        assert texts(p, qr_png()) == [URI]
        (pid,) = p.pids()
        assert wait_until(lambda: not alive(pid)), "the idle worker was not stopped"
        assert p.pids() == []
        assert texts(p, qr_png()) == [URI]  # and it comes back with the next image
    finally:
        p.close()


def test_a_worker_over_its_memory_limit_fails_that_image_and_the_next_one_decodes() -> None:
    p = DecodePool(workers=1, memory_mb=128)
    try:
        assert texts(p, qr_png()) == [URI]
        # 40 megapixels: allowed by the pixel limit, but about 175 MB to decode.
        with pytest.raises(imagefile.ImageError, match=r"128 MB.*crop it") as err:
            p.decode(blank_png(8000, 5000))
        assert "Error" not in str(err.value)  # a sentence, not an exception's name
        assert texts(p, qr_png()) == [URI]
    finally:
        p.close()


def test_a_bad_image_is_refused_with_its_reason_and_the_worker_stays(pool: DecodePool) -> None:
    assert texts(pool, qr_png()) == [URI]
    before = pool.pids()
    with pytest.raises(imagefile.ImageError, match="not an image"):
        pool.decode(b"not an image at all")
    assert pool.pids() == before


def test_a_worker_has_its_own_limits_and_nothing_of_the_daemons(
    pool: DecodePool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASSWORD", "hunter2-not-for-decoders")
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent")
    leaked = os.open(tmp_path / "queue.sqlite", os.O_RDWR | os.O_CREAT)  # inheritable
    os.set_inheritable(leaked, True)
    try:
        assert texts(pool, qr_png()) == [URI]
    finally:
        os.close(leaked)
    (pid,) = pool.pids()
    limits = {
        line[:26].strip(): line[26:].split()[:2]
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]
    }
    assert limits["Max address space"] == [str(poolmod.MEMORY_MB * 2**20)] * 2
    assert limits["Max core file size"] == ["0", "0"]
    assert limits["Max cpu time"][1] == str(poolmod.CPU_S)
    assert int(limits["Max cpu time"][0]) <= pool.budget_s + 4  # this image's share
    nofile = int(limits["Max open files"][0])
    assert limits["Max open files"] == [str(nofile)] * 2 and nofile <= 5
    if os.geteuid() == 0:  # root may look inside; an unprivileged test runs below
        fds = os.listdir(f"/proc/{pid}/fd")
        assert len(fds) == nofile, fds  # its pipes and /dev/null: no file of ours
        targets = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in fds]
        assert not any("queue.sqlite" in t for t in targets), targets
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        assert b"hunter2" not in environ and b"DBUS_SESSION_BUS_ADDRESS" not in environ
    # PR_SET_DUMPABLE 0, as the worker itself reads it back (root could read it anyway).
    assert pool.dumpable() == [0]
