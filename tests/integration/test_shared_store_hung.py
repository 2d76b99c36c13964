"""A shared database server that stops answering (SIGSTOPped: as hung, or partitioned,
as it looks from here) never holds a station: statements fail as StoreUnavailable and
the loss is reported, within bounds; when it answers again, everything goes on.

The bounds below are hang detectors (a frozen call would never return), generous enough
for a loaded machine; they are not speed targets.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from pgserver import PgServer

from tokenstation.daemon.provisioning.queue import JobQueue
from tokenstation.daemon.storage import schema
from tokenstation.daemon.storage.database import StoreUnavailable
from tokenstation.daemon.storage.postgres import PostgresDatabase
from tokenstation.daemon.storage.secretbox import SecretBox

#: Longer than any bound the store sets itself (an 8 s answer, a 5 s health check).
HANG_S = 20


@contextlib.contextmanager
def stopped(server: PgServer) -> Iterator[None]:
    """The server and every backend SIGSTOPped (they neither answer nor close)."""
    server.pause()
    try:
        yield
    finally:
        server.resume()


def _call(fn: object) -> object:
    """``fn()``'s result or exception, or "hung" when it has not returned in HANG_S."""
    box: list[object] = ["hung"]

    def run() -> None:
        try:
            box[0] = fn()  # type: ignore[operator]
        except Exception as exc:
            box[0] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_S)
    return box[0]


def test_a_server_that_stops_answering_is_an_error_and_reported_not_a_hang(
    pg_server: PgServer, pg_url: str
) -> None:
    db = PostgresDatabase(pg_url)
    schema.migrate(db, schema.PARTS)
    jobs = JobQueue(db, station="A", box=SecretBox(bytes(32)))
    states: list[bool] = []
    changed = threading.Event()

    def on_state(reachable: bool) -> None:
        states.append(reachable)
        changed.set()

    jobs.listen(lambda what: None, on_state)
    assert changed.wait(HANG_S) and states == [True]
    changed.clear()
    assert jobs.waiting() == 0
    with stopped(pg_server):
        first = _call(jobs.waiting)  # the status / queue-length path
        assert isinstance(first, StoreUnavailable), first
        assert "did not answer" in str(first) or "cannot be reached" in str(first)
        assert changed.wait(HANG_S) and states == [True, False]  # the listener noticed
        changed.clear()
        again = _call(jobs.waiting)  # now at once, without another wait on the server
        assert isinstance(again, StoreUnavailable), again
    assert changed.wait(HANG_S) and states == [True, False, True]
    deadline = threading.Event()
    for _ in range(HANG_S * 10):  # statements come back once the store reconnected
        with contextlib.suppress(StoreUnavailable):
            assert jobs.waiting() == 0
            break
        deadline.wait(0.1)
    else:
        raise AssertionError("statements did not come back after the server did")
    jobs.close()
