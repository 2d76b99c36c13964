"""`tokenstation daemon`: wires the PC/SC monitor, the station, its features and the bus.

One asyncio process; the PC/SC monitor blocks in SCardGetStatusChange on its own
thread and hands events to the loop, so an idle daemon wakes for nothing. One instance
per state directory (an flock, ``instance.py``) and per bus name, both taken before
any state is read and before crash recovery runs. SIGTERM and SIGINT stop it cleanly.

Who owns what: the Station (reader presence, the event stream, the card write path);
ClockSync (clock writes); the Provisioner (queue, pause, drop-folder intake, burns);
the StationInterface (the D-Bus face, handed each of them explicitly).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from pathlib import Path
from typing import Any

from tokenstation.daemon import pcsc, xdg
from tokenstation.daemon.bus import dbusio
from tokenstation.daemon.bus.interface import StationInterface
from tokenstation.daemon.bus.names import BUS_NAME, OBJECT_PATH
from tokenstation.daemon.bus.ops import DAEMON_TAKES_FDS
from tokenstation.daemon.clocksync.hostclock import HostClockTrust
from tokenstation.daemon.clocksync.sync import ClockSync
from tokenstation.daemon.config import Config
from tokenstation.daemon.instance import AlreadyRunning, InstanceLock
from tokenstation.daemon.intake.dropfolder import DropFolder
from tokenstation.daemon.provisioning.provisioner import Provisioner, default_paths
from tokenstation.daemon.provisioning.queue import JobQueue
from tokenstation.daemon.registry.store import Store
from tokenstation.daemon.station import Station
from tokenstation.daemon.storage.database import NameTaken, SchemaMismatch, StoreUnavailable
from tokenstation.daemon.storage.opening import secret_box, shared_database
from tokenstation.daemon.storage.secretbox import KeyProblem
from tokenstation.daemon.token.problem import Problem, ProblemKind

__all__ = ["AlreadyRunning", "BusUnavailable", "StoreRefused", "registry_path", "serve"]

log = logging.getLogger(__name__)


class BusUnavailable(Problem):
    """The bus to serve on cannot be reached."""

    kind = ProblemKind.UNAVAILABLE


class StoreRefused(Problem):
    """The registry or queue cannot be opened (unreachable, unknown schema, no key); of
    its cause's kind."""

    kind = ProblemKind.FAILED


def open_stores(cfg: Config, registry: Path, queue: Path) -> tuple[Store, JobQueue]:
    """The registry and the queue: this station's files, or the shared database.

    A shared database that cannot be reached now does not stop the start: the daemon
    reads and measures tokens as a running station does in an outage, connects in the
    background, checks the schema, the key and its name once the database answers, and
    claims nothing before (SharedQueue's keeper). A wrong schema, key or a name taken,
    found at start, is refused as before."""
    station = cfg.station
    try:
        box = secret_box(cfg)
        shared = shared_database(cfg, start_away=True)
        if shared is None:
            return Store(registry, station=station), JobQueue(queue, station=station)
        queue_db = shared_database(cfg, start_away=True)
        assert queue_db is not None
        store = Store(shared, station=station)
        try:
            jobs = JobQueue(queue_db, station=station, box=box, lease_s=cfg.store.lease_s)
            try:
                jobs.check_key()  # a station with another key could open no seed
                jobs.hold_name()  # before recovery: it settles claims made under this name
            except StoreUnavailable as exc:
                log.warning(
                    "the shared database cannot be reached at start (%s): tokens are read "
                    "and measured meanwhile; no job is claimed until it answers",
                    exc,
                )
        except BaseException:
            queue_db.close()
            store.close()
            raise
        return store, jobs
    except (NameTaken, SchemaMismatch, KeyProblem) as exc:
        raise StoreRefused(str(exc), exc.next_step, kind=exc.kind) from None
    except StoreUnavailable as exc:
        raise StoreRefused(
            str(exc),
            "Check [store] url (or --store, the PG* environment) and the server.",
            kind=exc.kind,
        ) from None


def _drop_folder(cfg: Config, path: Path, provisioner: Provisioner) -> DropFolder:
    return DropFolder(
        path,
        provisioner.intake.take,
        stability_s=cfg.drop.stability_s,
        polling=cfg.drop.polling,
        poll_interval_s=cfg.drop.poll_interval_s,
        files=provisioner.intake.files,
    )


def state_dir(cfg: Config) -> Path:
    """The daemon's state directory (the registry and the instance lock)."""
    return xdg.private_dir(cfg.state_dir if cfg.state_dir is not None else xdg.state_dir())


def registry_path(cfg: Config) -> Path:
    """Where the registry lives."""
    return state_dir(cfg) / "registry.sqlite3"


async def _claim_name(bus: Any, cfg: Config) -> None:
    reply = await bus.request_name(BUS_NAME, dbusio.NameFlag.DO_NOT_QUEUE)
    if reply == dbusio.RequestNameReply.PRIMARY_OWNER:
        return
    try:
        (pid,) = await dbusio.call(
            bus,
            dbusio.DBUS_NAME,
            dbusio.DBUS_PATH,
            dbusio.DBUS_NAME,
            "GetConnectionUnixProcessID",
            "s",
            [BUS_NAME],
        )
        who = f"pid {pid}, "
    except Exception:
        who = ""
    raise AlreadyRunning(f"another tokenstation daemon ({who}{cfg.bus} bus) owns {BUS_NAME}")


async def serve(cfg: Config, *, ready: asyncio.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code."""
    folder_path, queue_path, log_path = default_paths(cfg)
    # 1. The state directories, before anything in them is read or changed.
    lock = InstanceLock.acquire([state_dir(cfg), queue_path.parent], cfg.bus)
    try:
        return await _serve_locked(cfg, folder_path, queue_path, log_path, ready)
    finally:
        lock.release()


async def _serve_locked(
    cfg: Config,
    folder_path: Path,
    queue_path: Path,
    log_path: Path,
    ready: asyncio.Event | None,
) -> int:
    try:
        bus = await dbusio.connect(cfg.bus, unix_fds=DAEMON_TAKES_FDS)
    except Exception as exc:
        raise BusUnavailable(f"cannot connect to the {cfg.bus} bus ({exc})") from None
    try:
        # 2. The bus name, before any state is opened or recovered.
        await _claim_name(bus, cfg)
    except BaseException:
        await dbusio.disconnect(bus)
        raise
    loop = asyncio.get_running_loop()
    store, queue = await _open_stores_or_leave(bus, cfg, queue_path)
    trust = HostClockTrust(cfg.clock_trust)
    station = Station(cfg, store, trust, pcsc.PcscConnection)
    clock = ClockSync(station)
    provisioner = Provisioner(
        station, queue, cfg, drop_folder=folder_path, log_path=log_path, loop=loop
    )
    folder = _drop_folder(cfg, folder_path, provisioner)
    monitor: pcsc.PresenceMonitor | None = None
    folder_started = False
    try:
        # 3. Crash recovery: this process alone owns the state and the name.
        provisioner.recover()
        provisioner.start()
        bus.export(OBJECT_PATH, StationInterface(station, clock, provisioner))
        initial = await station.check_clock()

        def sink(ev: pcsc.ReaderEvent) -> None:
            at = time.time()
            loop.call_soon_threadsafe(station.on_reader_event, ev, at)

        monitor = pcsc.PresenceMonitor(sink, reader_filter=cfg.readers.accepts)
        monitor.start()
        folder.start()
        folder_started = True
        provisioner.intake.watching(folder.mode)
        stop = _stop_on_signals(loop)
        log.info(
            "tokenstation daemon ready: %s on the %s bus (D-Bus library %s); registry %s; "
            "host clock %s; drop folder %s (%s, %s mode)",
            BUS_NAME,
            cfg.bus,
            dbusio.LIBRARY,
            store.location,
            initial.reason,
            folder_path,
            folder.mode,
            cfg.mode,
        )
        if ready is not None:
            ready.set()
        return await _until_stopped(bus, stop)
    finally:
        _remove_signal_handlers(loop)
        if folder_started:
            await loop.run_in_executor(None, folder.stop)
        if monitor is not None:
            await loop.run_in_executor(None, monitor.stop)
        await provisioner.stop()
        await station.close()
        provisioner.close()
        queue.close()
        await trust.close()
        await dbusio.disconnect(bus)
        store.close()


async def _open_stores_or_leave(bus: Any, cfg: Config, queue: Path) -> tuple[Store, JobQueue]:
    """The stores; when they cannot be opened, the bus is left before the refusal."""
    try:
        return open_stores(cfg, registry_path(cfg), queue)
    except BaseException:
        await dbusio.disconnect(bus)
        raise


async def _until_stopped(bus: object, stop: asyncio.Event) -> int:
    """0 after SIGTERM/SIGINT; 1 when the daemon became unreachable (bus connection or
    name lost), so that systemd restarts it rather than it running on unreachable."""
    lost = await dbusio.wait_stop_or_lost(bus, BUS_NAME, stop)
    if lost is not None:
        log.error("%s; exiting so that the service manager restarts the daemon", lost)
        return 1
    log.info("stopping")
    return 0


def _stop_on_signals(loop: asyncio.AbstractEventLoop) -> asyncio.Event:
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _remove_signal_handlers(loop: asyncio.AbstractEventLoop) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(Exception):
            loop.remove_signal_handler(sig)
