"""Decoding images in worker processes: one file never blocks the others or the daemon.

A decoder is C code working on untrusted images: a pathological one can take seconds
or hundreds of megabytes however careful the limits are. So the daemon decodes in a
small pool of worker processes (``forkserver``: forked from a clean process that has
imported the decoders once, never from the threaded daemon). Each image gets the
decode time budget (daemon/decode.py) and a grace period on top; a worker that
overruns it is killed and replaced, and the file is refused as "no code found within
N s". A worker that grew past ``recycle_mb`` after a file is replaced too, so memory
comes back to the system. Files are handed out in arrival order (``submit`` runs the
callers' work on as many threads as there are workers, first come first served).

When worker processes cannot be started at all, images are decoded in the calling
thread, still within the time budget (the log says so).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import signal
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from tokenstation.daemon.qr import decode
from tokenstation.daemon.qr.image import ImageError
from tokenstation.daemon.qr.symbols import DecodeResult

log = logging.getLogger(__name__)

DEFAULT_WORKERS = 2
#: A worker's resident memory (MB) after a file above which it is replaced.
RECYCLE_MB = 200
#: Seconds past the budget before a worker that does not answer is killed.
GRACE_S = 2.0


def _serve(conn: Connection) -> None:
    """A worker: (image bytes, budget) in, ("ok", DecodeResult) or ("error", text) out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon decides when we stop
    while True:
        try:
            data, budget_s = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply: tuple[str, Any] = ("ok", decode.decode_bytes(data, budget_s=budget_s))
        except ImageError as exc:
            reply = ("error", str(exc))
        except MemoryError:
            reply = ("error", "the image is too large to decode in memory")
        conn.send(reply)


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


class _Worker:
    def __init__(self, ctx: Any) -> None:
        self.conn, child = ctx.Pipe()
        self.proc: BaseProcess = ctx.Process(
            target=_serve, args=(child,), name="tokenstation-decoder", daemon=True
        )
        self.proc.start()
        child.close()

    def stop(self, *, kill: bool = False) -> None:
        self.conn.close()
        if kill:
            self.proc.kill()
        self.proc.join(2.0)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(2.0)
        with contextlib.suppress(ValueError):
            self.proc.close()


class DecodePool:
    """Worker processes that decode images, each within a time budget."""

    def __init__(
        self,
        workers: int = DEFAULT_WORKERS,
        *,
        budget_s: float = decode.DEFAULT_BUDGET_S,
        grace_s: float = GRACE_S,
        recycle_mb: float = RECYCLE_MB,
    ) -> None:
        self.workers = workers
        self.budget_s = budget_s
        self.grace_s = grace_s
        self.recycle_mb = recycle_mb
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._starting = False
        self._in_flight: set[Any] = set()
        self._started = threading.Event()
        self._closed = False
        self._in_process = ""  # why images are decoded in the calling thread
        self._ctx: Any = None
        self._files = ThreadPoolExecutor(workers, thread_name_prefix="judge")

    # -- life cycle --------------------------------------------------------------------

    def start(self) -> None:
        """Start the workers in the background (the first image waits for them)."""
        with self._lock:
            if self._starting:
                return
            self._starting = True
        threading.Thread(target=self._start, name="decoder-start", daemon=True).start()

    def _start(self) -> None:
        try:
            ctx = multiprocessing.get_context("forkserver")
            # zbar too: decode imports it only for its fallback, which a worker should
            # not pay for on its first hard image.
            ctx.set_forkserver_preload([decode.__name__, "tokenstation.daemon.qr.zbar"])
            self._ctx = ctx
            for _ in range(self.workers):
                self._add(_Worker(ctx))
        except Exception as exc:  # no processes here: decode in the caller's thread
            self._in_process = f"worker processes could not start ({exc})"
            log.warning("decoding images in the daemon itself: %s", self._in_process)
        finally:
            self._started.set()

    def _add(self, worker: _Worker) -> None:
        with self._lock:
            self._all.add(worker)
        self._idle.put(worker)

    def _replace(self, worker: _Worker, *, kill: bool) -> None:
        with self._lock:
            self._all.discard(worker)
        worker.stop(kill=kill)
        if not self._closed:
            self._add(_Worker(self._ctx))

    def close(self) -> None:
        """Stop the workers (a file being decoded is abandoned)."""
        self._closed = True
        self._files.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            workers = list(self._all)
            self._all.clear()
        for w in workers:
            w.stop(kill=True)

    def describe(self) -> str:
        """Which decoders, where, and the budget: for `tokenstation status`."""
        where = (
            f"in {self.workers} worker processes"
            if not self._in_process
            else "in the daemon (no worker processes)"
        )
        return f"{decode.decoders()}; {where}, {self.budget_s:g} s per image"

    # -- work --------------------------------------------------------------------------

    def submit(self, fn: Callable[[Any], object], item: Any) -> Future[object] | None:
        """Run ``fn(item)`` on the next free file thread (arrival order); errors are logged.

        An ``item`` already waiting or being worked on is not taken twice (reading a file
        makes the drop folder see it again): None then.
        """
        with self._lock:
            if item in self._in_flight:
                return None
            self._in_flight.add(item)
        future = self._files.submit(fn, item)
        future.add_done_callback(lambda f: self._done(item, f))
        return future

    def _done(self, item: Any, future: Future[object]) -> None:
        with self._lock:
            self._in_flight.discard(item)
        if not future.cancelled() and future.exception() is not None:
            log.error("processing %s failed", item, exc_info=future.exception())

    def decode(self, data: bytes) -> DecodeResult:
        """Decode an image file's bytes in a worker; raises :class:`ImageError`."""
        self.start()
        self._started.wait()
        if self._in_process:
            return decode.decode_bytes(data, budget_s=self.budget_s)
        worker: _Worker | None = self._idle.get()
        assert worker is not None
        try:
            worker.conn.send((data, self.budget_s))
            if not worker.conn.poll(self.budget_s + self.grace_s):
                log.warning("an image overran its %g s budget: decoder restarted", self.budget_s)
                self._replace(worker, kill=True)
                worker = None
                return DecodeResult((), "", (0, 0), timed_out=True)
            status, value = worker.conn.recv()
        except (EOFError, OSError) as exc:
            code = worker.proc.exitcode if worker is not None else None
            if worker is not None:
                self._replace(worker, kill=True)
                worker = None
            raise ImageError(f"the decoder stopped on this image ({code or exc})") from None
        finally:
            if worker is not None:
                if _rss_mb(worker.proc.pid or 0) > self.recycle_mb:
                    self._replace(worker, kill=False)
                else:
                    self._idle.put(worker)
        if status == "error":
            raise ImageError(str(value))
        assert isinstance(value, DecodeResult)
        return value
