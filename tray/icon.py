"""The tray icon and its menu: the only module that imports pystray (lazily).

pystray's xorg backend has no menu, so the gtk backend (XEmbed trays) or appindicator
(StatusNotifierItem: KDE, GNOME with the AppIndicator extension) is chosen when
PyGObject is there; ``PYSTRAY_BACKEND`` still overrides. Without a display there is no
icon, and the log says why, once; notifications carry on.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from PIL import Image

from tokenstation.tray.model import Command, MenuEntry

log = logging.getLogger(__name__)


#: What GTK reads as it loads, set before its first import unless the user set it: no
#: OpenGL (an icon and a menu need none, and GTK initialising Mesa's software GL costs
#: ~45 MB of RSS) and no accessibility bus helpers.
GTK_ENVIRONMENT = {"GDK_GL": "disable", "NO_AT_BRIDGE": "1"}


def prepare_gtk_environment() -> None:
    """Set GTK_ENVIRONMENT's variables the user has not set; call before GTK is imported."""
    for name, value in GTK_ENVIRONMENT.items():
        os.environ.setdefault(name, value)


def _gtk_available() -> bool:
    prepare_gtk_environment()
    try:
        import gi

        gi.require_version("Gtk", "3.0")
        from gi.repository import Gtk  # noqa: F401
    except (ImportError, ValueError):
        return False
    return True


def xembed_tray_present() -> bool | None:
    """Whether an XEmbed system tray owns _NET_SYSTEM_TRAY_S0 (None: cannot tell)."""
    try:
        from Xlib import display as xdisplay  # python-xlib, pystray's own dependency

        d = xdisplay.Display()
        try:
            owner = d.get_selection_owner(d.intern_atom("_NET_SYSTEM_TRAY_S0"))
            return bool(owner) and owner != 0
        finally:
            d.close()
    except Exception:
        return None


def choose_backend(status_notifier_watcher: bool) -> tuple[str | None, str]:
    """(backend, why) for pystray; backend None means no icon can be shown."""
    forced = os.environ.get("PYSTRAY_BACKEND")
    if forced:
        return forced, f"PYSTRAY_BACKEND={forced}"
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        return None, "no display (DISPLAY and WAYLAND_DISPLAY are unset)"
    if not _gtk_available():
        return "xorg", "PyGObject/GTK 3 is missing: an icon without a menu (install PyGObject)"
    if status_notifier_watcher:
        return "appindicator", "a StatusNotifierWatcher is on the session bus"
    return "gtk", "XEmbed system tray"


class TrayIcon:
    """A pystray icon whose menu is rebuilt from ``entries()`` each time it opens."""

    def __init__(
        self,
        entries: Callable[[], list[MenuEntry]],
        on_command: Callable[[Command], None],
        backend: str,
    ) -> None:
        self.entries = entries
        self.on_command = on_command
        self.backend = backend
        self._icon: Any = None
        self._thread: threading.Thread | None = None
        self.has_menu = True
        self._shown: list[str] = []

    def start(self, image: Image.Image, title: str) -> None:
        """Create the icon and run its loop on a thread."""
        os.environ["PYSTRAY_BACKEND"] = self.backend
        prepare_gtk_environment()
        import pystray

        def item(entry: MenuEntry) -> Any:
            if entry.separator:
                return pystray.Menu.SEPARATOR
            command = entry.command
            if command is None:
                return pystray.MenuItem(entry.text, None, enabled=False)
            return pystray.MenuItem(
                entry.text, lambda _icon, _item: self.on_command(command), default=entry.default
            )

        def shown() -> Any:
            entries = self.entries()
            texts = [e.text for e in entries if not e.separator]
            if texts != self._shown:  # what the menu holds now, once per change (debug)
                self._shown = texts
                log.debug("tray menu: %s", " | ".join(texts))
            return (item(e) for e in entries)

        menu = pystray.Menu(shown)
        self._icon = pystray.Icon("tokenstation", image, title, menu)
        self.has_menu = bool(getattr(self._icon, "HAS_MENU", True))

        def setup(icon: Any) -> None:
            icon.visible = True

        self._thread = threading.Thread(
            target=self._icon.run, kwargs={"setup": setup}, name="tray-icon", daemon=True
        )
        self._thread.start()

    def update(self, image: Image.Image, title: str) -> None:
        """New picture, tooltip and menu (safe from any thread: pystray marshals it)."""
        if self._icon is None:
            return
        self._icon.icon = image
        self._icon.title = title
        self._icon.update_menu()

    def stop(self) -> None:
        """Remove the icon."""
        if self._icon is not None:
            self._icon.stop()
        if self._thread is not None:
            self._thread.join(5)
