"""The presence monitor on the real pcscd: cards and readers come and go, pcscd restarts."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator

import pytest

from tokenstation.daemon.simulator.stack import PcscStack

from conftest import SimToken

pytestmark = pytest.mark.pcsc


class Events:
    def __init__(self) -> None:
        self.q: queue.Queue[object] = queue.Queue()
        self.seen: list[object] = []

    def expect(self, kind: str, reader: str = "", timeout: float = 5.0) -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                ev = self.q.get(timeout=0.05)
            except queue.Empty:
                continue
            self.seen.append(ev)
            if ev.kind == kind and (not reader or ev.reader == reader):  # type: ignore[attr-defined]
                return ev
        raise AssertionError(f"no {kind} {reader} within {timeout} s; saw {self.seen}")


@pytest.fixture
def monitor(pcsc_stack: PcscStack) -> Iterator[Events]:
    from tokenstation.daemon import pcsc

    events = Events()
    mon = pcsc.PresenceMonitor(events.q.put, max_backoff_s=0.5)
    mon.start()
    events.expect("reader-added", pcsc_stack.reader_name(0))
    yield events
    mon.stop()
    assert not mon.alive


def test_insert_and_remove_are_reported_with_the_atr(
    monitor: Events, simulator: Callable[..., SimToken], pcsc_stack: PcscStack
) -> None:
    sim = simulator("--serial", "86596320000001", slot=1)
    ev = monitor.expect("card-inserted", pcsc_stack.reader_name(1))
    assert ev.atr[:4] == bytes.fromhex("3B888001")  # type: ignore[attr-defined]
    sim.stop()
    monitor.expect("card-removed", pcsc_stack.reader_name(1))


def test_power_cycle_is_a_remove_then_insert(
    monitor: Events, simulator: Callable[..., SimToken], pcsc_stack: PcscStack
) -> None:
    sim = simulator("--serial", "86596320000001")
    monitor.expect("card-inserted", pcsc_stack.reader_name(0))
    sim.power_cycle()
    monitor.expect("card-removed", pcsc_stack.reader_name(0))
    monitor.expect("card-inserted", pcsc_stack.reader_name(0))


def test_pcscd_restart_and_reader_changes_are_survived(
    monitor: Events, simulator: Callable[..., SimToken], pcsc_stack: PcscStack
) -> None:
    # vpcd readers cannot be hot-unplugged; a pcscd restart with a different
    # reader set is the closest real event: readers vanish, the service goes away,
    # and the monitor must come back on its own.
    try:
        pcsc_stack.restart(readers=4)
        monitor.expect("service-lost")
        monitor.expect("service-back", timeout=8)
        monitor.expect("reader-added", pcsc_stack.reader_name(3))
        pcsc_stack.restart(readers=2)
        monitor.expect("reader-removed", pcsc_stack.reader_name(3), timeout=8)
        monitor.expect("reader-added", pcsc_stack.reader_name(0), timeout=8)
        sim = simulator("--serial", "86596320000001")
        monitor.expect("card-inserted", pcsc_stack.reader_name(0))
        sim.stop()
        monitor.expect("card-removed", pcsc_stack.reader_name(0))
    finally:
        if pcsc_stack.readers != 2 or pcsc_stack.proc is None:
            pcsc_stack.restart(readers=2)
