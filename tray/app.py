"""`tokenstation tray`: daemon signals -> model -> icon and notifications; clicks -> D-Bus.

Talks to the daemon only over D-Bus. It can start before the daemon and survives its
restarts (NameOwnerChanged). The asyncio loop runs on the main thread; pystray's loop
runs on its own thread and hands clicks back with call_soon_threadsafe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

from tokenstation.daemon import __version__, xdg
from tokenstation.daemon.bus import dbusio
from tokenstation.daemon.bus.client import DaemonError, StationClient
from tokenstation.daemon.bus.names import BUS_NAME
from tokenstation.daemon.events import BurnDone, Event, decode
from tokenstation.daemon.token.sentences import join_sentences
from tokenstation.tray import icons
from tokenstation.tray.icon import TrayIcon, choose_backend, xembed_tray_present
from tokenstation.tray.model import Bubble, Command, NotifyChoices, TrayModel, TrayState
from tokenstation.tray.notify import Notifier

log = logging.getLogger(__name__)

SNW = "org.kde.StatusNotifierWatcher"


class TrayApp:
    """The tray process."""

    def __init__(
        self,
        *,
        daemon_bus: str = "session",
        show_icon: bool = True,
        choices: NotifyChoices | None = None,
    ) -> None:
        self.daemon_bus = daemon_bus
        self.show_icon = show_icon
        self.model = TrayModel(choices)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.station: StationClient | None = None
        self.session: Any = None
        self.notifier: Notifier | None = None
        self.icon: TrayIcon | None = None
        self.icon_files: dict[TrayState, Path] = {}
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._has_snw = False

    # -- life cycle ----------------------------------------------------------------------

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT or Quit."""
        self.loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self._stop.set)
        self.icon_files = icons.write_icons(xdg.private_dir(xdg.cache_dir()) / "icons")
        self.session = await dbusio.connect("session")
        self.notifier = Notifier(self.session, self._on_action, self._icon_path)
        no_notifications = ""
        if await self.notifier.start():
            self.model.actions = self.notifier.has_actions
        else:
            no_notifications, self.notifier = self.notifier.missing, None
        if self.daemon_bus == "session":
            self.station = StationClient(self.session)
        else:
            self.station = await StationClient.connect(self.daemon_bus, require=False)
        await self.station.subscribe_events(self._on_event)
        await self._watch_daemon()
        no_icon = self._start_icon() if self.show_icon else NO_ICON_ASKED
        self.model.menu_shown = not no_icon  # no menu to point to: the commands instead
        log.log(*where_events_go(no_notifications, no_icon))
        if await self.station.running():
            await self._load()
        self._refresh()
        log.info("tray ready (icon: %s)", self.icon.backend if self.icon else "none")
        await self._stop.wait()
        if self.icon is not None:
            self.icon.stop()
        if self.notifier is not None:
            await self.notifier.close_all()
        if self.station is not None and self.station.bus is not self.session:
            await self.station.close()
        await dbusio.disconnect(self.session)
        return 0

    def _start_icon(self) -> str:
        """Start the icon; "" when it runs, else why there is none."""
        assert self.loop is not None
        backend, why = choose_backend(self._has_snw)
        if backend is None:
            return why
        log.info("tray icon backend %s (%s)", backend, why)
        if backend == "gtk" and xembed_tray_present() is False:
            log.warning(
                "no system tray on this display (nobody owns _NET_SYSTEM_TRAY_S0 and no "
                "StatusNotifierWatcher runs): notifications only until a tray appears; "
                "the icon docks then"
            )
        self.icon = TrayIcon(self.model.menu, self._on_menu, backend)
        try:
            self.icon.start(icons.draw(self.model.state(), 64), self.model.tooltip())
        except Exception as exc:  # e.g. Xlib errors from a broken display
            self.icon = None
            return str(exc)
        return ""

    async def _watch_daemon(self) -> None:
        bus = self.station.bus if self.station else self.session
        await dbusio.add_match(
            bus,
            "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
            f"member='NameOwnerChanged',arg0='{BUS_NAME}'",
        )
        self._has_snw = await dbusio.name_has_owner(self.session, SNW)

        def on_message(msg: Any) -> None:
            if msg.message_type != dbusio.MessageType.SIGNAL or msg.member != "NameOwnerChanged":
                return
            name, _old, new = msg.body
            if name != BUS_NAME:
                return
            if new:
                self._spawn(self._load())
            else:
                self._show(self.model.disconnected())
                self._refresh()

        bus.add_message_handler(on_message)

    async def _load(self) -> None:
        assert self.station is not None
        try:
            status = await self.station.status()
            present = await self.station.present()
            jobs = await self.station.jobs(("queued", "burning", "failed"))
        except Exception as exc:
            log.warning("cannot read the daemon's state: %s", exc)
            return
        self.model.load(status, present, jobs)
        self._refresh()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- daemon -> user ------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        if not self.model.connected:
            self._spawn(self._load())
        self._show(self.model.apply(event))
        if self.model.connected and self.model.jobs_stale():
            self._spawn(self._load())  # jobs queued or burned at another station
        self._refresh()

    def _show(self, bubbles: list[Bubble]) -> None:
        for b in bubbles:
            log.info("notify [%s] %s: %s", b.key, b.summary, b.body)
            if self.notifier is not None:
                self._spawn(self._notify(b))

    async def _notify(self, bubble: Bubble) -> None:
        assert self.notifier is not None
        try:
            await self.notifier.show(bubble)
        except Exception as exc:
            log.warning("notification failed: %s", exc)

    def _refresh(self) -> None:
        if self.icon is not None:
            self.icon.update(icons.draw(self.model.state(), 64), self.model.tooltip())

    def _icon_path(self, bubble: Bubble) -> str:
        state = TrayState.ERROR if bubble.urgency == 2 else self.model.state()
        path = self.icon_files.get(state)
        return str(path) if path else ""

    # -- user -> daemon ------------------------------------------------------------------

    def _on_action(self, key: str, action: str) -> None:
        bubble = self.notifier.bubble_for(key) if self.notifier else None
        command = bubble.commands.get(action) if bubble else None
        if command is None:
            log.debug("action %s on %s has no command", action, key)
            return
        self._spawn(self.execute(command))

    def _on_menu(self, command: Command) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(lambda: self._spawn(self.execute(command)))

    async def execute(self, command: Command) -> None:
        """Carry out a click."""
        station = self.station
        assert station is not None
        kind = command.kind
        try:
            if kind == "sync":
                token = next((t for t in self.model.tokens() if t.serial == command.serial), None)
                confirm = bool(token and token.needs_confirmation)
                await station.sync(command.serial, confirm_untrusted_clock=confirm)
            elif kind == "burn":
                self.model.set_burning(command.serial, True)
                self._refresh()
                reply = await station.burn_job(command.job_id, command.serial)
                # The code to expect comes in this reply only: it is never broadcast.
                self._show(self.model.burn_result(decode(BurnDone, reply)))
            elif kind == "skip":
                await station.skip_job(command.job_id, command.serial)
            elif kind == "remove":
                await station.remove_job(command.job_id)
                await self._load()
            elif kind in ("pause", "resume"):
                await station.pause(kind == "pause")
            elif kind == "open-folder":
                self._open_folder()
            elif kind == "about":
                self._show(
                    [
                        Bubble(
                            "about",
                            f"tokenstation {__version__}",
                            "Burns and re-syncs NFC-programmable TOTP tokens. The daemon does "
                            "the work; this icon shows it.",
                            urgency=0,
                        )
                    ]
                )
            elif kind == "quit":
                self._stop.set()
        except DaemonError as exc:
            # The daemon's SyncFailed/BurnFailed signal carries the details for syncs and
            # burns; other refusals are shown here.
            if kind not in ("sync", "burn"):
                text = join_sentences(exc.text, exc.next_step) if exc.next_step else exc.text
                self._show([Bubble(f"error:{kind}", "tokenstation", text, urgency=2)])
        except Exception as exc:
            self._show(
                [Bubble(f"error:{kind}", "tokenstation", f"{kind} failed: {exc}", urgency=2)]
            )
        finally:
            if kind == "burn":
                self.model.set_burning(command.serial, False)
            self._refresh()

    def _open_folder(self) -> None:
        folder = self.model.drop_folder
        opener = shutil.which("xdg-open")
        if folder and opener:
            with contextlib.suppress(OSError):
                subprocess.Popen(
                    [opener, folder], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
                return
        self._show(
            [
                Bubble(
                    "folder", "Drop folder", folder or "unknown (is the daemon running?)", urgency=0
                )
            ]
        )


#: Why there is no icon when none was asked for.
NO_ICON_ASKED = "--no-icon was given"


def where_events_go(no_notifications: str, no_icon: str) -> tuple[int, str]:
    """The start-up line (log level, text) that says where events will be shown, true for
    each combination: "" for a part that runs, else why it does not."""
    if not no_notifications and not no_icon:
        return logging.INFO, "events go to notifications and the tray menu"
    if not no_notifications:
        level = logging.INFO if no_icon == NO_ICON_ASKED else logging.WARNING
        return level, f"no tray icon ({no_icon}): events go to notifications and the log"
    if not no_icon:
        return (
            logging.WARNING,
            f"no notification server ({no_notifications}): events go to the tray menu and the log",
        )
    return (
        logging.WARNING,
        f"no notification server ({no_notifications}) and no tray icon ({no_icon}): events "
        "go to the log only; start a notification server or a system tray, or use "
        "`tokenstation status`",
    )
