"""The privacyIDEA push when the server is away: the seed stays sealed, the reason is kept,
a retry is scheduled, and the admin token appears nowhere."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import pytest

from tokenstation.daemon.config import PrivacyIdeaConfig
from tokenstation.daemon.handover.generate import GenerateRequest, new_jobs
from tokenstation.daemon.handover.pusher import Pusher
from tokenstation.daemon.provisioning.queue import JobQueue

TOKEN = "eyJ-admin-token-never-shown"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def first_pass(q: JobQueue, cfg: PrivacyIdeaConfig) -> Pusher:
    """A pusher started on a loop until its first pass found a problem (then stopped)."""
    pusher = Pusher(q, cfg, asyncio.get_running_loop())
    pusher.start()
    for _ in range(200):
        await asyncio.sleep(0.02)
        if pusher.problem:
            break
    await asyncio.sleep(0.05)  # the retry is scheduled on the loop
    pusher.stop()
    return pusher


def test_a_server_away_leaves_the_seed_sealed_with_the_reason_and_retries(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    q = JobQueue(tmp_path / "queue.sqlite3")
    [job] = q.add_generated("b1", new_jobs(GenerateRequest(count=1), "b1")).queued
    q.start_burn(job.id, "86596320000001")
    q.burned(job.id, "86596320000001", "C302-i")
    token_file = tmp_path / "pi.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    cfg = PrivacyIdeaConfig(url=f"http://127.0.0.1:{closed_port()}", api_token_file=token_file)
    caplog.set_level(logging.DEBUG)

    pusher = asyncio.run(first_pass(q, cfg))
    assert "cannot be reached" in pusher.problem
    after = q.get(job.id)
    assert after is not None and after.handover == "pending"
    assert "not pushed yet" in after.handover_reason
    assert len(q.held_seeds()) == 1  # still held, sealed
    assert "tried again at" in pusher.status()["problem"]  # type: ignore[operator]
    assert TOKEN not in caplog.text and TOKEN not in repr(pusher.status())


def test_a_loose_token_file_is_refused_and_nothing_is_sent(tmp_path: Path) -> None:
    q = JobQueue(tmp_path / "queue.sqlite3")
    token_file = tmp_path / "pi.token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o644)
    cfg = PrivacyIdeaConfig(url="http://127.0.0.1:9", api_token_file=token_file)

    assert "chmod 600" in asyncio.run(first_pass(q, cfg)).problem
