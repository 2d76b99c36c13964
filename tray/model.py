"""What the tray shows, as plain data: state, tooltip, menu, recent events, bubbles.

Pure: daemon signals and snapshots in, descriptions out. The icon and notification
modules render these; tests read them directly. No secret reaches this module (the
daemon sends none), and nothing here would show one.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tokenstation.daemon.config import NotifyChoices

__all__ = ["Bubble", "Command", "MenuEntry", "NotifyChoices", "TrayModel", "TrayState"]


class TrayState(StrEnum):
    """One look per state."""

    NO_DAEMON = "daemon not running"
    IDLE = "idle"
    OK = "token in time"
    DRIFT = "drift warning"
    BURNING = "burning"
    ERROR = "error"
    PAUSED = "queue paused"


@dataclass(frozen=True)
class Command:
    """Something the user asked for, by menu or notification button."""

    kind: str  # sync | burn | skip | remove | pause | resume | open-folder | quit | about
    serial: str = ""
    job_id: int = 0


@dataclass(frozen=True)
class Bubble:
    """A notification. ``key`` groups bubbles that replace each other (one per token)."""

    key: str
    summary: str
    body: str
    actions: tuple[tuple[str, str], ...] = ()  # (action id, label)
    commands: dict[str, Command] = field(default_factory=dict)
    urgency: int = 1  # 0 low, 1 normal, 2 critical


@dataclass(frozen=True)
class MenuEntry:
    """One menu line: text, the command it runs (None: informational), default flag."""

    text: str
    command: Command | None = None
    default: bool = False
    separator: bool = False


SEPARATOR = MenuEntry("", separator=True)


class TrayModel:
    """The tray's picture of the station, kept current from D-Bus signals."""

    def __init__(self, choices: NotifyChoices | None = None, actions: bool = True) -> None:
        self.choices = choices or NotifyChoices()
        self.actions = actions  # the notification server shows buttons
        self.connected = False
        self.present: dict[str, dict[str, Any]] = {}  # reader -> presence
        self.jobs: list[dict[str, Any]] = []
        self.paused = False
        self.drop_folder = ""
        self.error = ""
        self.burning: set[str] = set()
        self.recent: deque[tuple[float, str]] = deque(maxlen=10)
        self._coded: set[object] = set()  # jobs whose code to expect was shown

    # -- input ---------------------------------------------------------------------------

    def load(
        self, status: dict[str, Any], present: list[dict[str, Any]], jobs: list[dict[str, Any]]
    ) -> None:
        """A full snapshot (after connecting)."""
        self.connected = True
        self.present = {p["reader"]: p for p in present}
        self.jobs = [j for j in jobs if j.get("state") in ("queued", "burning", "failed")]
        self.paused = bool(status.get("paused"))
        self.drop_folder = str(status.get("drop_folder", ""))
        self.error = "" if status.get("pcsc") == "running" else str(status.get("pcsc", ""))

    def disconnected(self) -> list[Bubble]:
        """The daemon went away."""
        was = self.connected
        self.connected = False
        self.present.clear()
        self.burning.clear()
        if was:
            self._note("daemon stopped")
            if self.choices.errors:
                return [
                    Bubble(
                        "daemon",
                        "tokenstation daemon stopped",
                        "Tokens are not checked until it runs again "
                        "(systemctl --user start tokenstation).",
                        urgency=2,
                    )
                ]
        return []

    def apply(self, name: str, p: dict[str, Any]) -> list[Bubble]:
        """One daemon signal -> state change, and the bubbles to show for it."""
        handler = getattr(self, f"_on_{name}", None)
        if handler is None:
            return []
        result: list[Bubble] = handler(p)
        return result

    def _note(self, text: str) -> None:
        self.recent.appendleft((time.time(), text))

    def _on_TokenPresented(self, p: dict[str, Any]) -> list[Bubble]:  # noqa: N802
        self.present[p["reader"]] = p
        self._note(f"{p.get('model')} {p.get('serial')} placed")
        return []

    def _on_TokenMeasured(self, p: dict[str, Any]) -> list[Bubble]:  # noqa: N802
        self.present[p["reader"]] = p
        serial, model = p.get("serial", ""), p.get("model", "")
        words = p.get("drift_words", "")
        self._note(f"{serial}: {words}")
        verdict = p.get("verdict")
        if not self.choices.token_presented:
            return []
        if verdict == "in-time" and not self.choices.in_time:
            return []
        if verdict == "drift" and not self.choices.drift:
            return []
        summary = f"Token {serial} ({model})"
        if verdict == "read-only":
            return [Bubble(f"token:{serial}", summary, f"Clock {words}. {p.get('reason', '')}.")]
        body = f"Clock {words} (±{float(p.get('drift_uncertainty_s', 0)):.2f} s)."
        actions: tuple[tuple[str, str], ...] = ()
        commands: dict[str, Command] = {}
        urgency = 1
        if p.get("sync_offered"):
            if self.actions:
                actions = (("sync", "Sync clock"),)
                commands = {"sync": Command("sync", serial)}
                body += " Sync clock sets it to this computer's time; the seed stays."
            else:
                body += f" To set it, choose 'Sync clock of {serial}' in the tray menu."
            if p.get("needs_confirmation"):
                body += f" Note: {_sentence(p.get('reason', ''))}"
        elif verdict == "drift":
            body += f" {_sentence(p.get('reason', ''))}"
        else:
            body += " Within the threshold: nothing to do."
            urgency = 0
        return [Bubble(f"token:{serial}", summary, body, actions, commands, urgency)]

    def _on_TokenRemoved(self, p: dict[str, Any]) -> list[Bubble]:  # noqa: N802
        self.present.pop(p.get("reader", ""), None)
        self._note(f"{p.get('serial')} removed")
        return []

    def _on_CardIgnored(self, p: dict[str, Any]) -> list[Bubble]:  # noqa: N802
        self._note(f"non-token card on {p.get('reader')}")
        key = p.get("kind") == "security-key"  # named even when other cards are not shown
        if not self.choices.non_token_cards and not key:
            return []
        title = "A security key, not a token" if key else "Not a programmable token"
        return [Bubble(f"reader:{p.get('reader')}", title, str(p.get("message", "")), urgency=0)]

    def _on_SyncDone(self, p: dict[str, Any]) -> list[Bubble]:  # noqa: N802
        serial = p.get("serial", "")
        after = p.get("drift_after_words", "set")
        self._note(f"{serial}: clock set ({p.get('drift_before_words')} -> {after})")
        if not self.choices.sync_result:
            return []
        return [
            Bubble(
                f"token:{serial}",
                f"Clock set: token {serial}",
                f"It was {p.get('drift_before_words')}; now {after}.",
                urgency=0,
            )
        ]

    def _on_SyncFailed(self, p: dict[str, Any]) -> list[Bubble]:  # noqa: N802
        serial = p.get("serial", "")
        self._note(f"{serial}: sync {p.get('outcome')}")
        return [
            Bubble(
                f"token:{serial}",
                f"Clock not set: token {serial}",
                f"{_sentence(p.get('message', ''))} {p.get('next_step', '')}".strip(),
                urgency=2,
            )
        ]

    def _on_FileTaken(self, p: dict[str, Any]) -> list[Bubble]:  # noqa: N802
        name = p.get("file", "")
        queued = p.get("queued", [])
        self.jobs.extend(queued)
        if p.get("verdict") == "ok":
            labels = ", ".join(j["label"] for j in queued) or "nothing new"
            self._note(f"{name}: queued {labels}")
            body = f"Queued {labels} from {name}."
            if queued:
                body += " Place a token to burn it."
            if p.get("reason"):
                body += f" {_sentence(p['reason'])}"
            for w in p.get("warnings", []):
                body += f" Note: {_sentence(w)}"
            return [Bubble(f"file:{name}", "QR file taken", body, urgency=0)]
        self._note(f"{name}: refused")
        where = " It was moved to failed/." if p.get("moved_to") else ""
        if p.get("next_step"):
            where += f" {p['next_step']}"
        return [
            Bubble(
                f"file:{name}",
                f"File refused: {name}",
                f"{p.get('kind')}: {_sentence(p.get('reason', ''))}{where}",
                urgency=2 if p.get("verdict") == "error" else 1,
            )
        ]

    def _on_BurnOffered(self, p: dict[str, Any]) -> list[Bubble]:  # noqa: N802
        serial, job = p.get("serial", ""), p.get("job", {})
        body = (
            f"Secret {job.get('secret_fingerprint')} ({job.get('algorithm')}, "
            f"{job.get('period')} s) from {job.get('source')}."
        )
        if p.get("warning"):
            body += f" {_sentence(p['warning'])}"
        jid = int(job.get("id", 0))
        actions: tuple[tuple[str, str], ...] = ()
        commands: dict[str, Command] = {}
        if self.actions:
            actions = (("burn", "Burn"), ("skip", "Skip"))
            commands = {"burn": Command("burn", serial, jid), "skip": Command("skip", serial, jid)}
        else:
            body += " Burn or skip it from the tray menu."
        return [Bubble(f"token:{serial}", str(p.get("question", "")), body, actions, commands)]

    def _on_BurnDone(self, p: dict[str, Any]) -> list[Bubble]:  # noqa: N802
        serial, job = p.get("serial", ""), p.get("job", {})
        self.burning.discard(serial)
        self.jobs = [j for j in self.jobs if j.get("id") != job.get("id")]
        self._note(f"burned {job.get('label')} onto {serial}")
        return [self._burn_bubble(p)]

    def burn_result(self, p: dict[str, Any]) -> list[Bubble]:
        """The reply to this tray's own BurnJob: it carries the code to expect, which the
        BurnDone signal does not on the system bus. The bubble once, with the code."""
        job_id = p.get("job", {}).get("id")
        if not p.get("expected_code") or job_id in self._coded:
            return []
        return [self._burn_bubble(p)]

    def _burn_bubble(self, p: dict[str, Any]) -> Bubble:
        serial, job = p.get("serial", ""), p.get("job", {})
        code = str(p.get("expected_code", ""))
        if code:
            self._coded.add(job.get("id"))
        until = time.strftime(
            "%H:%M:%S", time.localtime(float(p.get("expected_code_valid_until", 0)))
        )
        expect = (
            f" Switch it off and on: it should show {code[:3]} {code[3:]} (until {until})."
            if code
            else ""
        )
        return Bubble(
            f"token:{serial}",
            f"Burned {job.get('label')} onto {serial}",
            f"Token {serial} ({p.get('model')}) now holds secret "
            f"{job.get('secret_fingerprint')}.{expect}",
        )

    def _on_BurnFailed(self, p: dict[str, Any]) -> list[Bubble]:  # noqa: N802
        serial, job = p.get("serial", ""), p.get("job", {})
        self.burning.discard(serial)
        self._note(f"burn of {job.get('label')} onto {serial} {p.get('outcome')}")
        return [
            Bubble(
                f"token:{serial}",
                f"Burn failed: {job.get('label')} onto {serial}",
                f"{_sentence(p.get('message', ''))} {p.get('next_step', '')}".strip()
                + (" The job is queued again." if p.get("outcome") == "requeued" else ""),
                urgency=2,
            )
        ]

    def _on_QueueState(self, p: dict[str, Any]) -> list[Bubble]:  # noqa: N802
        self.paused = bool(p.get("paused"))
        return []

    def _on_Error(self, p: dict[str, Any]) -> list[Bubble]:  # noqa: N802
        if p.get("kind") == "service-lost":
            self.error = str(p.get("message", ""))
            self.present.clear()
        self._note(str(p.get("message", "error")))
        if not self.choices.errors:
            return []
        return [
            Bubble(
                f"error:{p.get('kind')}",
                "tokenstation: "
                + ("PC/SC service lost" if p.get("kind") == "service-lost" else "error"),
                f"{_sentence(p.get('message', ''))} {p.get('next_step', '')}".strip(),
                urgency=2,
            )
        ]

    def _on_ServiceBack(self, p: dict[str, Any]) -> list[Bubble]:  # noqa: N802
        self.error = ""
        self._note("PC/SC service back")
        return []

    def set_burning(self, serial: str, on: bool) -> None:
        """A burn this tray started is running (or ended)."""
        (self.burning.add if on else self.burning.discard)(serial)

    # -- output --------------------------------------------------------------------------

    def tokens(self) -> list[dict[str, Any]]:
        """Presented tokens (cards that are tokens), by reader."""
        return [p for _r, p in sorted(self.present.items()) if p.get("serial")]

    def state(self) -> TrayState:
        """The icon's state."""
        if not self.connected:
            return TrayState.NO_DAEMON
        if self.error:
            return TrayState.ERROR
        if self.burning:
            return TrayState.BURNING
        tokens = self.tokens()
        if any(t.get("verdict") == "drift" for t in tokens):
            return TrayState.DRIFT
        if self.paused:
            return TrayState.PAUSED
        if tokens:
            return TrayState.OK
        return TrayState.IDLE

    def tooltip(self) -> str:
        """The state in words."""
        state = self.state()
        if state == TrayState.NO_DAEMON:
            return "tokenstation: the daemon is not running"
        if state == TrayState.ERROR:
            return f"tokenstation: {self.error}"
        parts = [f"{t['serial']} {t.get('drift_words', 'measuring')}" for t in self.tokens()]
        waiting = sum(1 for j in self.jobs if j.get("state") == "queued")
        text = "tokenstation: " + ("; ".join(parts) if parts else "no token on the readers")
        if waiting:
            text += f"; {waiting} job(s) queued" + (" (paused)" if self.paused else "")
        return text

    def menu(self) -> list[MenuEntry]:
        """The menu, built from the live state."""
        if not self.connected:
            return [
                MenuEntry("Daemon not running", None),
                SEPARATOR,
                MenuEntry("About tokenstation", Command("about")),
                MenuEntry("Quit", Command("quit")),
            ]
        entries: list[MenuEntry] = []
        default_set = False
        for t in self.tokens():
            entries.append(
                MenuEntry(
                    f"{t['serial']} {t.get('model')}: {t.get('drift_words', 'measuring')}", None
                )
            )
            if t.get("sync_safe") and t.get("verdict") != "read-only":
                entries.append(
                    MenuEntry(
                        f"Sync clock of {t['serial']}",
                        Command("sync", t["serial"]),
                        default=not default_set and bool(t.get("sync_offered")),
                    )
                )
                default_set = default_set or bool(t.get("sync_offered"))
        if not entries:
            entries.append(MenuEntry("No token on the readers", None))
        entries.append(SEPARATOR)
        queued = [j for j in self.jobs if j.get("state") in ("queued", "failed")]
        for j in queued[:10]:
            bound = f" -> {j['serial']}" if j.get("serial") else ""
            state = "" if j.get("state") == "queued" else f" ({j['state']})"
            entries.append(
                MenuEntry(
                    f"Remove job {j['id']}: {j['label']}{bound}{state}",
                    Command("remove", job_id=int(j["id"])),
                )
            )
        if not queued:
            entries.append(MenuEntry("No jobs waiting", None))
        entries.append(
            MenuEntry("Resume queue", Command("resume"))
            if self.paused
            else MenuEntry("Pause queue", Command("pause"))
        )
        entries.append(
            MenuEntry("Open drop folder", Command("open-folder"), default=not default_set)
        )
        entries.append(SEPARATOR)
        for at, text in list(self.recent)[:10]:
            entries.append(MenuEntry(f"{time.strftime('%H:%M', time.localtime(at))} {text}", None))
        if self.recent:
            entries.append(SEPARATOR)
        entries.append(MenuEntry("About tokenstation", Command("about")))
        entries.append(MenuEntry("Quit", Command("quit")))
        return entries


def _sentence(text: str) -> str:
    text = str(text).strip()
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."
