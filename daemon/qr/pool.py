"""Decoding images in boxed worker processes, started with the first image, stopped when idle.

A decoder is C code working on untrusted images: a pathological one can take seconds
or hundreds of megabytes however careful the limits are, and a subverted one runs with
whatever the process may do. So the daemon decodes in up to ``workers`` processes of
their own (daemon/qr/worker.py: image bytes in through a pipe, a JSON reply out; no
descriptor of the daemon's, no file or socket they could open, their own address space
and CPU limits, no core dumps). None runs until an image comes: the first one starts a
worker (about 0.1 s: a fresh interpreter importing the decoders), and a worker that had
no image for ``idle_s`` (60 s) is stopped, so an idle daemon is one process.

Each image gets the decode time budget (daemon/qr/decode.py) and a grace period on top;
a worker that overruns it is killed, and the file is refused as "no code found within
N s". A worker that breaks one of its limits (memory, CPU) or dies on an image fails
that image with the reason; the next image gets a fresh worker. A worker that grew past
``recycle_mb`` after a file, or that used most of its lifetime CPU allowance, is
replaced too, so memory comes back to the system. Files are handed out in arrival
order (``submit`` runs the callers' work on as many threads as there are workers, first
come first served).

When no worker process can be started at all (the first start fails), images are
decoded in the calling thread, still within the time budget (the log says so).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from tokenstation.daemon.qr import decode, worker
from tokenstation.daemon.qr.image import ImageError
from tokenstation.daemon.qr.symbols import DecodeResult

log = logging.getLogger(__name__)

DEFAULT_WORKERS = 2
#: A worker's resident memory (MB) after a file above which it is replaced.
RECYCLE_MB = 200
#: Seconds past the budget before a worker that does not answer is killed.
GRACE_S = 2.0
#: Seconds without an image after which a worker is stopped.
IDLE_S = 60.0
#: A worker's address space (RLIMIT_AS, MB). The largest image the limits of
#: daemon/qr/image.py let through (40 megapixels) peaks at about 175 MB of address
#: space in a worker (52 MB of it the interpreter and the decoders): 512 leaves room
#: for animations and zbar's passes, and stops a decoder bug long before the machine
#: feels it.
MEMORY_MB = 512
#: A worker's CPU time over its life (RLIMIT_CPU hard limit, s). Per image the worker
#: sets a soft limit of the budget plus 2 s; it is replaced once it has used all but
#: the next image's share of this, so only a runaway ever meets the hard limit.
CPU_S = 300
#: Seconds a new worker may take to say it is ready (a fresh interpreter: about 0.1 s).
START_S = 20.0
#: What a worker's environment keeps of the daemon's: no credentials, no bus address.
ENVIRONMENT = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "LC_CTYPE")


class _Timeout(Exception):
    pass


class _Worker:
    """One worker process and its two pipes."""

    def __init__(self, memory_mb: int, cpu_s: int) -> None:
        argv = [sys.executable, "-m", worker.__name__]
        argv += ["--memory-mb", str(memory_mb), "--cpu-s", str(cpu_s)]
        env = {k: v for k, v in os.environ.items() if k in ENVIRONMENT}
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            cwd="/",
            env=env,
            bufsize=0,
        )
        self.last_used = time.monotonic()
        try:
            ready = self.read(time.monotonic() + START_S)
        except Exception:
            self.stop(kill=True)
            raise
        if not isinstance(ready, dict) or not isinstance(ready.get("ready"), str):
            self.stop(kill=True)
            raise OSError("the decoder process did not start as expected")
        self.decoders: str = ready["ready"]
        self.dumpable = ready.get("dumpable")  # its own PR_GET_DUMPABLE: 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, data: bytes, budget_s: float) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(worker.REQUEST.pack(len(data), budget_s))
        self.proc.stdin.write(data)

    def _read(self, n: int, deadline: float) -> bytes:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        chunks, left = [], n
        while left:
            wait_ms = max(0, int((deadline - time.monotonic()) * 1000))
            if not poller.poll(wait_ms):
                raise _Timeout
            chunk = os.read(fd, left)
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def read(self, deadline: float) -> Any:
        """The next reply, parsed; _Timeout past ``deadline``, EOFError if the worker died."""
        (length,) = worker.REPLY.unpack(self._read(worker.REPLY.size, deadline))
        if length > worker.MAX_REPLY:
            raise ValueError(f"a reply of {length} bytes")
        return json.loads(self._read(length, deadline))

    def cpu_s(self) -> float:
        """CPU time used so far (from /proc, not from the worker's word)."""
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return 0.0

    def rss_mb(self) -> float:
        try:
            with open(f"/proc/{self.pid}/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        except (OSError, ValueError, IndexError):
            return 0.0

    def stop(self, *, kill: bool = False) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                if pipe is not None:
                    pipe.close()
        if kill:
            with contextlib.suppress(OSError):
                self.proc.kill()
        try:
            self.proc.wait(2.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(2.0)


def failure_reason(returncode: int | None, memory_mb: int, cpu_s: float) -> str:
    """Why a worker stopped on an image, as the sentence the file is refused with."""
    if returncode is not None and returncode < 0:
        sig = -returncode
        if sig == signal.SIGXCPU:
            return (
                f"the decoder used more than its {cpu_s:g} s of CPU time on this image; "
                "crop it to the code or scale it down"
            )
        name = signal.Signals(sig).name if sig in signal.valid_signals() else str(sig)
        return (
            f"the decoder stopped on this image ({name}), most likely over the {memory_mb} MB "
            "of memory a decoder may use; crop it to the code or scale it down"
        )
    return (
        f"the decoder stopped on this image (exit status {returncode}), most likely over the "
        f"{memory_mb} MB of memory a decoder may use; crop it to the code or scale it down"
    )


class DecodePool:
    """Worker processes that decode images, each within a time budget and its limits."""

    def __init__(
        self,
        workers: int = DEFAULT_WORKERS,
        *,
        budget_s: float = decode.DEFAULT_BUDGET_S,
        grace_s: float = GRACE_S,
        recycle_mb: float = RECYCLE_MB,
        idle_s: float = IDLE_S,
        memory_mb: int = MEMORY_MB,
        cpu_s: int = CPU_S,
    ) -> None:
        self.workers = workers
        self.budget_s = budget_s
        self.grace_s = grace_s
        self.recycle_mb = recycle_mb
        self.idle_s = idle_s
        self.memory_mb = memory_mb
        self.cpu_s = cpu_s
        self._cond = threading.Condition()
        self._idle: list[_Worker] = []  # most recently used last
        self._all: set[_Worker] = set()
        self._starting = 0  # workers being started (counted against ``workers``)
        self._reaper: threading.Thread | None = None
        self._in_flight: set[Any] = set()
        self._closed = threading.Event()
        self._started_once = False
        self._in_process = ""  # why images are decoded in the calling thread
        self._decoders = ""  # what the workers decode with, as the first one said
        self._files = ThreadPoolExecutor(workers, thread_name_prefix="judge")

    # -- life cycle --------------------------------------------------------------------

    def pids(self) -> list[int]:
        """The worker processes running now (none until the first image)."""
        with self._cond:
            return sorted(w.pid for w in self._all)

    def dumpable(self) -> list[object]:
        """Each running worker's dumpable flag, as it read it (0: no core dumps)."""
        with self._cond:
            return [w.dumpable for w in self._all]

    def _take(self) -> _Worker | None:
        """A worker for one image: an idle one, else a new one; None: decode here."""
        with self._cond:
            while True:
                if self._closed.is_set():
                    raise ImageError("the daemon is stopping; the file is taken again at start")
                if self._in_process:
                    return None
                if self._idle:
                    return self._idle.pop()
                if len(self._all) + self._starting < self.workers:
                    self._starting += 1
                    break
                self._cond.wait()
        try:
            w = _Worker(self.memory_mb, self.cpu_s)
        except Exception as exc:
            with self._cond:
                self._starting -= 1
                self._cond.notify_all()
                if not self._started_once:
                    self._in_process = f"worker processes could not start ({exc})"
                    log.warning("decoding images in the daemon itself: %s", self._in_process)
                    return None
            raise ImageError(f"the image decoder could not be started ({exc})") from None
        with self._cond:
            self._starting -= 1
            self._started_once = True
            self._decoders = w.decoders
            self._all.add(w)
            if self._closed.is_set():
                self._all.discard(w)
                w.stop(kill=True)
                raise ImageError("the daemon is stopping; the file is taken again at start")
            if self._reaper is None:
                self._reaper = threading.Thread(
                    target=self._reap_loop, name="decoder-idle", daemon=True
                )
                self._reaper.start()
        return w

    def _give_back(self, w: _Worker) -> None:
        with self._cond:
            w.last_used = time.monotonic()
            if self._closed.is_set():
                self._all.discard(w)
            else:
                self._idle.append(w)
                self._cond.notify_all()
                return
        w.stop()

    def _retire(self, w: _Worker, *, kill: bool) -> None:
        w.stop(kill=kill)
        with self._cond:
            self._all.discard(w)
            self._cond.notify_all()

    def reap_idle(self, now: float | None = None) -> int:
        """Stop the workers without an image since ``now - idle_s``; how many stopped."""
        now = time.monotonic() if now is None else now
        with self._cond:
            stale = [w for w in self._idle if now - w.last_used >= self.idle_s]
            for w in stale:
                self._idle.remove(w)
                self._all.discard(w)
        for w in stale:
            w.stop()
        if stale:
            log.info("stopped %d idle decoder process(es)", len(stale))
        return len(stale)

    def _reap_loop(self) -> None:
        """Stops idle workers; ends when none is left (the next image starts it again)."""
        while True:
            self.reap_idle()
            with self._cond:
                if self._closed.is_set() or (not self._all and not self._starting):
                    self._reaper = None
                    return
                if self._idle:
                    oldest = min(w.last_used for w in self._idle)
                    self._cond.wait(max(0.01, oldest + self.idle_s - time.monotonic()))
                else:
                    self._cond.wait()  # all busy: woken when one is given back

    def close(self) -> None:
        """Stop the workers (a file being decoded is abandoned)."""
        with self._cond:
            self._closed.set()
            workers = list(self._all)
            self._all.clear()
            self._idle.clear()
            self._cond.notify_all()
        self._files.shutdown(wait=False, cancel_futures=True)
        for w in workers:
            w.stop(kill=True)

    def describe(self) -> str:
        """Which decoders, where, and the budget: for `tokenstation status`."""
        if self._in_process:
            where = "in the daemon (no worker processes)"
            return f"{decode.decoders()}; {where}, {self.budget_s:g} s per image"
        return (
            f"{self._decoders or 'decoders loaded with the first image'}; in up to "
            f"{self.workers} worker processes (running now: {len(self.pids())}; started with "
            f"the first image, stopped after {self.idle_s:g} s without one; "
            f"{self.memory_mb} MB, no files or sockets each), {self.budget_s:g} s per image"
        )

    # -- work --------------------------------------------------------------------------

    def submit(self, fn: Callable[[Any], object], item: Any) -> Future[object] | None:
        """Run ``fn(item)`` on the next free file thread (arrival order); errors are logged.

        An ``item`` already waiting or being worked on is not taken twice (reading a file
        makes the drop folder see it again): None then.
        """
        with self._cond:
            if item in self._in_flight:
                return None
            self._in_flight.add(item)
        future = self._files.submit(fn, item)
        future.add_done_callback(lambda f: self._done(item, f))
        return future

    def _done(self, item: Any, future: Future[object]) -> None:
        with self._cond:
            self._in_flight.discard(item)
        if not future.cancelled() and future.exception() is not None:
            log.error("processing %s failed", item, exc_info=future.exception())

    def decode(self, data: bytes) -> DecodeResult:
        """Decode an image file's bytes in a worker; raises :class:`ImageError`."""
        w = self._take()
        if w is None:
            return decode.decode_bytes(data, budget_s=self.budget_s)
        try:
            w.send(data, self.budget_s)
            reply = w.read(time.monotonic() + self.budget_s + self.grace_s)
        except _Timeout:
            log.warning("an image overran its %g s budget: decoder stopped", self.budget_s)
            self._retire(w, kill=True)
            return DecodeResult((), "", (0, 0), timed_out=True)
        except ValueError as exc:  # not our protocol: a decoder gone wrong
            self._retire(w, kill=True)
            raise ImageError(f"the decoder gave an answer that could not be read ({exc})") from None
        except (EOFError, OSError):
            with contextlib.suppress(subprocess.TimeoutExpired):
                w.proc.wait(2.0)
            reason = failure_reason(w.proc.returncode, self.memory_mb, self.budget_s + 2)
            log.warning("a decoder process stopped on an image: %s", reason)
            self._retire(w, kill=True)
            raise ImageError(reason) from None
        spent = w.cpu_s() > self.cpu_s - self.budget_s - self.grace_s - 1
        if spent or w.rss_mb() > self.recycle_mb:
            self._retire(w, kill=False)
        else:
            self._give_back(w)
        if isinstance(reply, dict) and isinstance(reply.get("error"), str):
            raise ImageError(reply["error"])
        try:
            return worker.result_from_wire(reply["ok"] if isinstance(reply, dict) else None)
        except (KeyError, TypeError, ValueError) as exc:
            raise ImageError(f"the decoder gave an answer that could not be read ({exc})") from None
