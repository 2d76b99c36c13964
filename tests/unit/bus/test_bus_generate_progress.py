"""GenerateJobs with a progress tag: GenerateProgress events counting up to the total
(counts only), at most 10 a second; without a tag none; the batch is the same one call."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tokenstation.daemon.bus.generate import generate_jobs
from tokenstation.daemon.events import Event, GenerateProgress
from tokenstation.daemon.provisioning.queue import JobQueue
from tokenstation.daemon.station import StationError


def run(tmp_path: Path, options: dict[str, Any]) -> tuple[dict[str, Any], list[Event]]:
    events: list[Event] = []
    queue = JobQueue(tmp_path / "queue.sqlite3")
    prov: Any = SimpleNamespace(
        queue=queue, station=SimpleNamespace(publish=events.append), jobs_added=lambda: None
    )

    async def call() -> dict[str, Any]:
        result = await generate_jobs(prov, options)
        await asyncio.sleep(0.05)  # the last event hops onto the loop
        return result

    try:
        return asyncio.run(call()), events
    finally:
        queue.close()


def test_a_tagged_call_reports_counts_up_to_the_total_and_nothing_else(tmp_path: Path) -> None:
    result, events = run(tmp_path, {"count": 1000, "progress": "ab12"})
    assert len(result["jobs"]) == 1000
    assert events and all(isinstance(e, GenerateProgress) for e in events)
    done = [e.done for e in events if isinstance(e, GenerateProgress)]
    assert done == sorted(done) and done[0] == 1 and done[-1] == 1000
    assert {(e.request, e.total) for e in events if isinstance(e, GenerateProgress)} == {
        ("ab12", 1000)
    }


def test_without_a_tag_no_progress_is_sent(tmp_path: Path) -> None:
    result, events = run(tmp_path, {"count": 5})
    assert len(result["jobs"]) == 5 and events == []


def test_a_bad_tag_is_refused_and_nothing_is_queued(tmp_path: Path) -> None:
    with pytest.raises(StationError, match="option progress"):
        run(tmp_path, {"count": 5, "progress": "no spaces"})
    q = JobQueue(tmp_path / "queue.sqlite3")
    assert q.jobs(["queued"]) == []
    q.close()
