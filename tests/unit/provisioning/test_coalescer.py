"""Coalescer: changes told from threads acted on on the loop, a burst as a few calls."""

from __future__ import annotations

import asyncio
import threading

from tokenstation.daemon.provisioning.coalescer import Coalescer


def test_a_lone_change_is_acted_on_at_once_a_burst_in_a_few_calls_the_last_after_it() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        calls: list[tuple[str, int]] = []  # (what, changes told before the call)
        told = 0

        def act(what: str) -> None:
            calls.append((what, told))

        c = Coalescer(loop, act, window_s=0.05)
        c.poke("added 1")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert calls == [("added 1", 0)]  # at once, not after a window

        await asyncio.sleep(0.1)  # a quiet spell, then 500 changes from two threads
        counting = threading.Lock()

        def burst(first: int) -> None:
            nonlocal told
            for i in range(first, first + 250):
                with counting:
                    told += 1
                c.poke(f"added {i}")

        threads = [threading.Thread(target=burst, args=(n,)) for n in (2, 252)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        await asyncio.sleep(0.2)
        later = calls[1:]
        assert 1 <= len(later) <= 4, later  # not 500 calls
        assert later[-1][1] == 500  # the last call began after the last change
        c.stop()
        c.poke("after the stop")
        await asyncio.sleep(0.1)
        assert len(calls) == 1 + len(later)  # nothing after a stop

    asyncio.run(scenario())


def test_the_name_of_a_burst_says_how_many_changes_and_the_last() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        calls: list[str] = []
        c = Coalescer(loop, calls.append, window_s=0.05)
        c.poke("claimed 1")
        await asyncio.sleep(0.01)
        for i in (2, 3, 4):
            c.poke(f"claimed {i}")
        await asyncio.sleep(0.1)
        assert calls == ["claimed 1", "3 changes, the last: claimed 4"]

    asyncio.run(scenario())
