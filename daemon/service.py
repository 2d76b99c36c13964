"""`tokenstation daemon`: wires the PC/SC monitor, the station and the D-Bus service.

One asyncio process; the PC/SC monitor blocks in SCardGetStatusChange on its own
thread and hands events to the loop, so an idle daemon wakes for nothing. One
instance per bus name; SIGTERM and SIGINT stop it cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from pathlib import Path

from . import dbusio, pcsc, xdg
from .bus import StationInterface
from .busnames import BUS_NAME, OBJECT_PATH
from .busops import DAEMON_TAKES_FDS
from .clock import HostClockTrust
from .config import Config
from .dropfolder import DropFolder
from .jobqueue import JobQueue
from .provisioning import Provisioner, default_paths
from .station import Station
from .store import Store

log = logging.getLogger(__name__)


class AlreadyRunning(Exception):
    """Another daemon owns the bus name."""


class BusUnavailable(Exception):
    """The bus to serve on cannot be reached."""


def _drop_folder(cfg: Config, path: Path, provisioner: Provisioner) -> DropFolder:
    return DropFolder(
        path,
        provisioner.take,
        stability_s=cfg.drop.stability_s,
        polling=cfg.drop.polling,
        poll_interval_s=cfg.drop.poll_interval_s,
    )


def registry_path(cfg: Config) -> Path:
    """Where the registry lives."""
    base = cfg.state_dir if cfg.state_dir is not None else xdg.state_dir()
    return xdg.private_dir(base) / "registry.sqlite3"


async def serve(cfg: Config, *, ready: asyncio.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code."""
    try:
        bus = await dbusio.connect(cfg.bus, unix_fds=DAEMON_TAKES_FDS)
    except Exception as exc:
        raise BusUnavailable(f"cannot connect to the {cfg.bus} bus ({exc})") from None
    store = Store(registry_path(cfg))
    trust = HostClockTrust(cfg.clock_trust)
    station = Station(cfg, store, trust, pcsc.PcscConnection)
    loop = asyncio.get_running_loop()
    folder_path, queue_path, log_path = default_paths(cfg)
    queue = JobQueue(queue_path)
    provisioner = Provisioner(
        station, queue, cfg, drop_folder=folder_path, log_path=log_path, loop=loop
    )
    folder = _drop_folder(cfg, folder_path, provisioner)
    monitor: pcsc.PresenceMonitor | None = None
    folder_started = False
    try:
        iface = StationInterface(station, provisioner)
        bus.export(OBJECT_PATH, iface)
        reply = await bus.request_name(BUS_NAME, dbusio.NameFlag.DO_NOT_QUEUE)
        if reply != dbusio.RequestNameReply.PRIMARY_OWNER:
            raise AlreadyRunning(
                f"another tokenstation daemon owns {BUS_NAME} on the {cfg.bus} bus"
            )
        initial = await trust.check()
        station.last_trust = initial

        def sink(ev: pcsc.ReaderEvent) -> None:
            at = time.time()
            loop.call_soon_threadsafe(station.on_reader_event, ev, at)

        monitor = pcsc.PresenceMonitor(sink, reader_filter=cfg.readers.accepts)
        monitor.start()
        folder.start()
        folder_started = True
        provisioner.mode_text = folder.mode
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info(
            "tokenstation daemon ready: %s on the %s bus (D-Bus library %s); registry %s; "
            "host clock %s; drop folder %s (%s, %s mode)",
            BUS_NAME,
            cfg.bus,
            dbusio.LIBRARY,
            store.path,
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
        await station.close()
        queue.close()
        await trust.close()
        await dbusio.disconnect(bus)
        store.close()


async def _until_stopped(bus: object, stop: asyncio.Event) -> int:
    """0 after SIGTERM/SIGINT; 1 when the daemon became unreachable (bus connection or
    name lost), so that systemd restarts it rather than it running on unreachable."""
    lost = await dbusio.wait_stop_or_lost(bus, BUS_NAME, stop)
    if lost is not None:
        log.error("%s; exiting so that the service manager restarts the daemon", lost)
        return 1
    log.info("stopping")
    return 0


def _remove_signal_handlers(loop: asyncio.AbstractEventLoop) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(Exception):
            loop.remove_signal_handler(sig)
