"""Desktop notifications (org.freedesktop.Notifications) with action buttons.

Through the project's D-Bus module (dbus-next, or dbus-fast when installed). The
server's capabilities are read first: without "actions" the bubbles carry no buttons
and say where the action is instead. One bubble per key (one per token): a newer
bubble for the same key replaces the older one (replaces_id), so a token's
"37.4 s fast" becomes "Clock set" in place instead of stacking. Bubbles for one key go
out one at a time (the next needs the id the server gave the last), and while one is on
its way only the newest waiting one follows it: a burst of 50 files is a few calls.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Callable
from typing import Any

from tokenstation.daemon.bus import dbusio
from tokenstation.tray.model import Bubble

log = logging.getLogger(__name__)

NAME = "org.freedesktop.Notifications"
PATH = "/org/freedesktop/Notifications"
APP_NAME = "tokenstation"
DESKTOP_ENTRY = "tokenstation"

ActionHandler = Callable[[str, str], None]  # (bubble key, action id)


class Notifier:
    """Shows :class:`Bubble` values and reports their button clicks."""

    def __init__(
        self, bus: Any, on_action: ActionHandler, icon_for: Callable[[Bubble], str]
    ) -> None:
        self.bus = bus
        self.on_action = on_action
        self.icon_for = icon_for
        self.capabilities: set[str] = set()
        self.server = ""
        self._ids: dict[str, int] = {}  # bubble key -> notification id
        self._keys: dict[int, str] = {}
        self._bubbles: dict[str, Bubble] = {}
        self._latest: dict[str, Bubble] = {}  # the newest bubble asked for, per key
        self._turns: dict[str, asyncio.Lock] = {}  # one Notify call at a time, per key
        #: Why there is no notification server ("" while there is one).
        self.missing = ""

    async def start(self) -> bool:
        """Read the server's capabilities and listen for clicks; False when there is none."""
        try:
            (caps,) = await dbusio.call(self.bus, NAME, PATH, NAME, "GetCapabilities")
            info = await dbusio.call(self.bus, NAME, PATH, NAME, "GetServerInformation")
        except Exception as exc:
            self.missing = str(exc) or "none answers on the session bus"
            return False
        self.capabilities = set(caps)
        self.server = f"{info[0]} {info[2]}" if len(info) >= 3 else str(info)
        await dbusio.add_match(self.bus, f"type='signal',interface='{NAME}',path='{PATH}'")
        self.bus.add_message_handler(self._on_message)
        log.info("notifications by %s (%s)", self.server, ", ".join(sorted(self.capabilities)))
        return True

    @property
    def has_actions(self) -> bool:
        """The server shows buttons."""
        return "actions" in self.capabilities

    def bubble_for(self, key: str) -> Bubble | None:
        """The last bubble shown for ``key``."""
        return self._bubbles.get(key)

    async def show(self, bubble: Bubble) -> int:
        """Show (or replace) the bubble for ``bubble.key``; returns its id. A bubble a
        newer one for its key overtook while it waited is not sent."""
        self._latest[bubble.key] = bubble
        async with self._turns.setdefault(bubble.key, asyncio.Lock()):
            if self._latest.get(bubble.key) is not bubble:
                return self._ids.get(bubble.key, 0)
            return await self._send(bubble)

    async def _send(self, bubble: Bubble) -> int:
        body = (
            html.escape(bubble.body, quote=False)
            if "body-markup" in self.capabilities
            else bubble.body
        )
        actions: list[str] = []
        if self.has_actions:
            for action_id, label in bubble.actions:
                actions += [action_id, label]
        hints = {
            "urgency": dbusio.Variant("y", bubble.urgency),
            "desktop-entry": dbusio.Variant("s", DESKTOP_ENTRY),
            "category": dbusio.Variant("s", "device"),
        }
        if "x-dunst-stack-tag" in self.capabilities:
            hints["x-dunst-stack-tag"] = dbusio.Variant("s", bubble.key)
        replaces = self._ids.get(bubble.key, 0)
        timeout = 0 if bubble.actions and self.has_actions else -1  # wait for a click
        (nid,) = await dbusio.call(
            self.bus,
            NAME,
            PATH,
            NAME,
            "Notify",
            "susssasa{sv}i",
            [
                APP_NAME,
                replaces,
                self.icon_for(bubble),
                bubble.summary,
                body,
                actions,
                hints,
                timeout,
            ],
        )
        self._ids[bubble.key] = nid
        self._keys[nid] = bubble.key
        self._bubbles[bubble.key] = bubble
        return int(nid)

    async def close_all(self) -> None:
        """Close every bubble this tray has open."""
        for nid in list(self._keys):
            try:
                await dbusio.call(self.bus, NAME, PATH, NAME, "CloseNotification", "u", [nid])
            except Exception:
                log.debug("closing notification %d failed", nid, exc_info=True)

    def _on_message(self, msg: Any) -> None:
        if msg.message_type != dbusio.MessageType.SIGNAL or msg.interface != NAME:
            return
        if msg.member == "ActionInvoked":
            nid, action = msg.body
            key = self._keys.get(int(nid))
            if key is not None:
                self.on_action(key, str(action))
        elif msg.member == "NotificationClosed":
            nid = int(msg.body[0])
            key = self._keys.pop(nid, None)
            if key is not None and self._ids.get(key) == nid:
                del self._ids[key]
