"""What the tray shows, as plain data: state, tooltip, menu, recent events, bubbles.

Pure: the daemon's typed events (decoded from its signals by the client) and snapshots
in, descriptions out. The icon and notification
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
from tokenstation.daemon.events import (
    BurnDone,
    BurnFailed,
    BurnOffered,
    BurnOutcome,
    CardIgnored,
    CardKind,
    Event,
    Fault,
    FaultKind,
    FileTaken,
    FileVerdict,
    JobState,
    JobView,
    PresenceView,
    ProfileDeleted,
    ProfilesSynced,
    QueueState,
    ServiceBack,
    StoreReachability,
    SyncDone,
    SyncFailed,
    SyncVerdict,
    TokenMeasured,
    TokenPresented,
    TokenRemoved,
    TokenUpdated,
    decode,
)
from tokenstation.daemon.token.sentences import end_sentence, join_sentences

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
    """The tray's picture of the station, kept current from the daemon's events."""

    def __init__(self, choices: NotifyChoices | None = None, actions: bool = True) -> None:
        self.choices = choices or NotifyChoices()
        self.actions = actions  # the notification server shows buttons
        self.menu_shown = True  # a tray icon (and so its menu) is there
        self.connected = False
        self.present: dict[str, PresenceView] = {}  # reader -> presence
        self.jobs: list[JobView] = []
        self.paused = False
        self.drop_folder = ""
        self.error = ""
        self.burning: set[str] = set()
        self.recent: deque[tuple[float, str]] = deque(maxlen=10)
        self._coded: set[int] = set()  # jobs whose code to expect was shown
        self.store_down_since: float | None = None  # the shared database unreachable
        self.waiting: int | None = None  # jobs waiting at any station (QueueState, status)
        self._files: _FileBurst | None = None  # the files judged last, if in a burst

    # -- input ---------------------------------------------------------------------------

    def load(
        self, status: dict[str, Any], present: list[dict[str, Any]], jobs: list[dict[str, Any]]
    ) -> None:
        """A full snapshot (after connecting)."""
        self.connected = True
        self.present = {p["reader"]: decode(PresenceView, p) for p in present}
        views = [decode(JobView, j) for j in jobs]
        self.jobs = [j for j in views if j.state in _OPEN]
        self.paused = bool(status.get("paused"))
        self.drop_folder = str(status.get("drop_folder", ""))
        self.error = "" if status.get("pcsc") == "running" else str(status.get("pcsc", ""))
        store = status.get("store")
        self.store_down_since = None
        if isinstance(store, dict) and store.get("reachable") is False:
            self.store_down_since = float(store.get("since") or time.time())
        length = status.get("queue_length")
        self.waiting = length if isinstance(length, int) else None

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

    def apply(self, event: Event) -> list[Bubble]:
        """One daemon event -> state change, and the bubbles to show for it."""
        if isinstance(event, TokenPresented):
            return self._presented(event)
        if isinstance(event, TokenMeasured):
            return self._measured(event)
        if isinstance(event, TokenRemoved):
            return self._removed(event)
        if isinstance(event, CardIgnored):
            return self._ignored(event)
        if isinstance(event, SyncDone):
            return self._sync_done(event)
        if isinstance(event, SyncFailed):
            return self._sync_failed(event)
        if isinstance(event, FileTaken):
            return self._file_taken(event)
        if isinstance(event, BurnOffered):
            return self._burn_offered(event)
        if isinstance(event, BurnDone):
            return self._burn_done(event)
        if isinstance(event, BurnFailed):
            return self._burn_failed(event)
        if isinstance(event, ProfilesSynced):
            return self._profiles_synced(event)
        if isinstance(event, TokenUpdated):  # after a write: the line as it is now
            self.present[event.reader] = event
            return []
        if isinstance(event, ProfileDeleted):  # its presence, profiles refreshed
            self.present[event.reader] = event
            self._note(f"{event.serial}: profile {event.profile} deleted")
            return []
        if isinstance(event, QueueState):
            self.paused = event.paused
            self.waiting = event.length
            return []
        if isinstance(event, StoreReachability):
            return self._store(event)
        if isinstance(event, Fault):
            return self._fault(event)
        if isinstance(event, ServiceBack):
            self.error = ""
            self._note("PC/SC service back")
        # DriftDetected repeats TokenMeasured (which showed it); ReaderAdded/Removed
        # change nothing the tray shows.
        return []

    def _note(self, text: str) -> None:
        self.recent.appendleft((time.time(), text))

    def _presented(self, p: TokenPresented) -> list[Bubble]:
        self.present[p.reader] = p  # an event is a PresenceView too
        self._note(f"{p.model} {p.serial} placed")
        return []

    def _measured(self, p: TokenMeasured) -> list[Bubble]:
        self.present[p.reader] = p  # an event is a PresenceView too
        serial, model = p.serial or "", p.model or ""
        words = p.drift_words or ""
        self._note(f"{serial}: {words}")
        verdict = p.verdict
        if not self.choices.token_presented:
            return []
        if verdict == SyncVerdict.IN_TIME and not self.choices.in_time:
            return []
        if verdict == SyncVerdict.DRIFT and not self.choices.drift:
            return []
        # The family's words, as the daemon published them (``daemon/families/``).
        summary = p.name_words or f"Token {serial} ({model})"
        if p.holds_words:  # a token with profiles: what it holds, then its one drift figure
            words = _token_words(p)
        if verdict == SyncVerdict.READ_ONLY:
            return [
                Bubble(f"token:{serial}", summary, join_sentences(f"Clock {words}", p.reason or ""))
            ]
        body = (
            f"{_sentence(words)}"
            if p.holds_words
            else f"Clock {words} (±{p.drift_uncertainty_s or 0.0:.2f} s)."
        )
        actions: tuple[tuple[str, str], ...] = ()
        commands: dict[str, Command] = {}
        urgency = 1
        if p.sync_offered:
            if self.actions:
                actions = (("sync", "Sync clock"),)
                commands = {"sync": Command("sync", serial)}
                body += " Sync clock sets it to this computer's time; the seed stays."
            else:
                body += (
                    f" To set it, choose 'Sync clock of {serial}' in the tray menu."
                    if self.menu_shown
                    else f" To set it, run `tokenstation sync --serial {serial}`."
                )
            if p.needs_confirmation:
                body += f" Note: {_sentence(p.reason or '')}"
        elif verdict == SyncVerdict.DRIFT:
            body += f" {_sentence(p.reason or '')}"
        else:
            body += " Within the threshold: nothing to do."
            urgency = 0
        return [Bubble(f"token:{serial}", summary, body, actions, commands, urgency)]

    def _removed(self, p: TokenRemoved) -> list[Bubble]:
        self.present.pop(p.reader, None)
        self._note(f"{p.serial} removed")
        return []

    def _ignored(self, p: CardIgnored) -> list[Bubble]:
        self._note(f"non-token card on {p.reader}")
        key = p.kind == CardKind.SECURITY_KEY  # named even when other cards are not shown
        if not self.choices.non_token_cards and not key:
            return []
        title = "A security key, not a token" if key else "Not a programmable token"
        return [Bubble(f"reader:{p.reader}", title, p.message, urgency=0)]

    def _sync_done(self, p: SyncDone) -> list[Bubble]:
        after = p.drift_after_words or "set"
        self._note(f"{p.serial}: clock set ({p.drift_before_words} -> {after})")
        if not self.choices.sync_result:
            return []
        return [
            Bubble(
                f"token:{p.serial}",
                f"Clock set: token {p.serial}",
                f"It was {p.drift_before_words}; now {after}.",
                urgency=0,
            )
        ]

    def _profiles_synced(self, p: ProfilesSynced) -> list[Bubble]:
        before = p.drift_before_words or _seconds(p.drift_before_s)
        after = p.drift_after_words or f"{_seconds(p.drift_after_s)} (whole seconds)"
        self._note(f"{p.serial}: {p.synced} profile clocks set ({before} -> {after})")
        if not self.choices.sync_result:
            return []
        return [
            Bubble(
                f"token:{p.serial}",
                f"Clocks set: {p.model} {p.serial}",
                f"{p.synced} profiles holding a seed: the largest drift was {before}; now "
                f"{after}. Their settings are unchanged.",
                urgency=0,
            )
        ]

    def _sync_failed(self, p: SyncFailed) -> list[Bubble]:
        self._note(f"{p.serial}: sync {p.outcome}")
        return [
            Bubble(
                f"token:{p.serial}",
                f"Clock not set: token {p.serial}",
                f"{_sentence(p.message)} {p.next_step}".strip(),
                urgency=2,
            )
        ]

    def _file_taken(self, p: FileTaken) -> list[Bubble]:
        """A file's bubble; files that come in a burst share one bubble, its count."""
        self.jobs.extend(p.queued)
        if p.verdict == FileVerdict.OK:
            self._note(f"{p.file}: queued {', '.join(j.label for j in p.queued) or 'nothing new'}")
        else:
            self._note(f"{p.file}: refused")
        one = _file_bubble(p)
        burst = self._files
        if burst is None or p.time - burst.last_at > FILE_BURST_S:
            self._files = _FileBurst(one.key)
            self._files.add(p, one.urgency)
            return [one]
        burst.add(p, one.urgency)
        return [burst.bubble()]

    def _burn_offered(self, p: BurnOffered) -> list[Bubble]:
        serial, job = p.serial, p.job
        body = (
            f"Secret {job.secret_fingerprint} ({job.algorithm}, {job.period} s) from {job.source}."
        )
        if p.warning:
            body += f" {_sentence(p.warning)}"
        actions: tuple[tuple[str, str], ...] = ()
        commands: dict[str, Command] = {}
        if self.actions:
            actions = (("burn", "Burn"), ("skip", "Skip"))
            commands = {
                "burn": Command("burn", serial, job.id),
                "skip": Command("skip", serial, job.id),
            }
        else:
            body += (
                " Burn or skip it from the tray menu."
                if self.menu_shown
                else f" Burn it with `tokenstation queue burn {job.id} --serial {serial}`."
            )
        return [Bubble(f"token:{serial}", p.question, body, actions, commands)]

    def _burn_done(self, p: BurnDone) -> list[Bubble]:
        serial, job = p.serial, p.job
        self.burning.discard(serial)
        self.jobs = [j for j in self.jobs if j.id != job.id]
        self._note(f"burned {job.label} {_where(job, serial)}")
        return [self._burn_bubble(p)]

    def burn_result(self, p: BurnDone) -> list[Bubble]:
        """The reply to this tray's own BurnJob: it carries the code to expect, which the
        BurnDone signal does not on the system bus. The bubble once, with the code."""
        if not p.expected_code or p.job.id in self._coded:
            return []
        return [self._burn_bubble(p)]

    def _burn_bubble(self, p: BurnDone) -> Bubble:
        serial, job = p.serial, p.job
        code = p.expected_code or ""
        if code:
            self._coded.add(job.id)
        until = time.strftime("%H:%M:%S", time.localtime(p.expected_code_valid_until or 0))
        expect = (
            f" Switch it off and on: it should show {code[:3]} {code[3:]} (until {until})."
            if code
            else ""
        )
        if job.profile is not None:
            expect = f" It should show {code[:3]} {code[3:]} (until {until})." if code else ""
            return Bubble(
                f"token:{serial}",
                f"Burned {job.label} {_where(job, serial)}",
                f"Profile {job.profile} of {p.model} {serial} now holds secret "
                f"{job.secret_fingerprint}.{expect}",
                urgency=0,
            )
        return Bubble(
            f"token:{serial}",
            f"Burned {job.label} onto {serial}",
            f"Token {serial} ({p.model}) now holds secret {job.secret_fingerprint}.{expect}",
        )

    def _burn_failed(self, p: BurnFailed) -> list[Bubble]:
        serial, job = p.serial, p.job
        self.burning.discard(serial)
        self._note(f"burn of {job.label} {_where(job, serial)} {p.outcome}")
        then = {
            BurnOutcome.REQUEUED: " The job is queued again.",
            BurnOutcome.INTERRUPTED: " Plug it in again to finish this job.",
        }.get(p.outcome, "")
        return [
            Bubble(
                f"token:{serial}",
                f"Burn failed: {job.label} {_where(job, serial)}",
                f"{_sentence(p.message)} {p.next_step}".strip() + then,
                urgency=2,
            )
        ]

    def _fault(self, p: Fault) -> list[Bubble]:
        lost = p.kind == FaultKind.SERVICE_LOST
        if lost:
            self.error = p.message
            self.present.clear()
        self._note(p.message or "error")
        if not self.choices.errors:
            return []
        return [
            Bubble(
                f"error:{p.kind}",
                "tokenstation: " + ("PC/SC service lost" if lost else "error"),
                f"{_sentence(p.message)} {p.next_step}".strip(),
                urgency=2,
            )
        ]

    def _store(self, p: StoreReachability) -> list[Bubble]:
        if p.reachable == (self.store_down_since is None):
            return []  # no change (a repeat, or already known from the status)
        self.store_down_since = None if p.reachable else p.since
        self._note("shared database back" if p.reachable else "shared database unreachable")
        if not self.choices.errors:
            return []
        if p.reachable:
            return [Bubble("store", "Shared database back", _sentence(p.message), urgency=0)]
        return [Bubble("store", "Shared database unreachable", _sentence(p.message), urgency=2)]

    def store_line(self) -> str:
        """The persistent line while the shared database is unreachable ("" otherwise)."""
        if self.store_down_since is None:
            return ""
        at = time.strftime("%H:%M", time.localtime(self.store_down_since))
        return f"Shared database unreachable since {at}: drops wait, no burns"

    def jobs_stale(self) -> bool:
        """True when the jobs known here are fewer or more than those waiting anywhere
        (another station queued or burned some): time to list them again."""
        known = sum(1 for j in self.jobs if j.state == JobState.QUEUED)
        return self.waiting is not None and self.waiting != known

    def set_burning(self, serial: str, on: bool) -> None:
        """A burn this tray started is running (or ended)."""
        (self.burning.add if on else self.burning.discard)(serial)

    # -- output --------------------------------------------------------------------------

    def tokens(self) -> list[PresenceView]:
        """Presented tokens (cards that are tokens), by reader."""
        return [p for _r, p in sorted(self.present.items()) if p.serial]

    def state(self) -> TrayState:
        """The icon's state."""
        if not self.connected:
            return TrayState.NO_DAEMON
        if self.error:
            return TrayState.ERROR
        if self.burning:
            return TrayState.BURNING
        tokens = self.tokens()
        if any(t.verdict == SyncVerdict.DRIFT for t in tokens):
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
        parts = [f"{t.serial} {_token_words(t)}" for t in self.tokens()]
        waiting = sum(1 for j in self.jobs if j.state == JobState.QUEUED)
        if self.waiting is not None:  # the daemon's count: at every station sharing the queue
            waiting = self.waiting
        text = "tokenstation: " + ("; ".join(parts) if parts else "no token on the readers")
        if waiting:
            text += f"; {waiting} job(s) queued" + (" (paused)" if self.paused else "")
        if self.store_line():
            text += f"; {self.store_line()}"
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
        if self.store_line():
            entries += [MenuEntry(self.store_line(), None), SEPARATOR]
        default_set = False
        for t in self.tokens():
            serial = t.serial or ""
            entries.append(MenuEntry(f"{serial} {t.model}: {_token_words(t)}", None))
            if t.sync_offered and t.sync_safe and t.verdict == SyncVerdict.DRIFT:
                # Offered only while the daemon offers it: never for a token in time.
                entries.append(
                    MenuEntry(f"Sync clock of {serial}", Command("sync", serial), not default_set)
                )
                default_set = True
        if not entries:
            entries.append(MenuEntry("No token on the readers", None))
        entries.append(SEPARATOR)
        queued = [j for j in self.jobs if j.state in (JobState.QUEUED, JobState.FAILED)]
        for j in queued[:10]:
            bound = f" -> {j.serial}" if j.serial else ""
            state = "" if j.state == JobState.QUEUED else f" ({j.state})"
            entries.append(
                MenuEntry(
                    f"Remove job {j.id}: {j.label}{bound}{state}",
                    Command("remove", job_id=j.id),
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


_OPEN = (JobState.QUEUED, JobState.BURNING, JobState.FAILED)


def _token_words(p: PresenceView) -> str:
    """A token in its family's words: "12 of 100 profiles used, 3 s fast (whole-second
    clock, ±1 s)" for a token with profiles (the daemon's one drift figure and its words,
    as `status` and `profiles` show it), its drift words otherwise."""
    if p.holds_words:
        return f"{p.holds_words}, " + (p.drift_words or f"drift {_seconds(p.drift_s)}")
    return p.drift_words or "measuring"


def _seconds(drift: float | None) -> str:
    """A whole-second drift with its sign ("+3 s", "0 s"), "unknown" when None."""
    if drift is None:
        return "unknown"
    shown = round(drift)
    return f"{shown:+d} s" if shown else "0 s"


def _where(job: JobView, serial: str) -> str:
    """onto token S / into profile P of S."""
    return (
        f"into profile {job.profile} of {serial}" if job.profile is not None else f"onto {serial}"
    )


#: Files judged closer together than this (by the daemon's clock) are one burst: its
#: first file's bubble becomes the burst's, counted as more come, so a folder of 50
#: QR codes dropped at once is one notification, not 50.
FILE_BURST_S = 3.0


def _file_bubble(p: FileTaken) -> Bubble:
    """The bubble of one taken or refused file."""
    name = p.file
    if p.verdict == FileVerdict.OK:
        labels = ", ".join(j.label for j in p.queued) or "nothing new"
        body = f"Queued {labels} from {name}."
        if p.queued:
            body += " Place a token to burn it."
        if p.reason:
            body += f" {_sentence(p.reason)}"
        for w in p.warnings:
            body += f" Note: {_sentence(w)}"
        return Bubble(f"file:{name}", "QR file taken", body, urgency=0)
    where = " It was moved to failed/." if p.moved_to else ""
    if p.next_step:
        where += f" {p.next_step}"
    return Bubble(
        f"file:{name}",
        f"File refused: {name}",
        f"{p.kind}: {_sentence(p.reason)}{where}",
        urgency=2 if p.verdict == FileVerdict.ERROR else 1,
    )


@dataclass
class _FileBurst:
    """Files judged in a burst: what one bubble says of them all."""

    key: str  # the first file's bubble, replaced as the burst grows
    last_at: float = 0.0
    files: int = 0
    accounts: int = 0
    taken: int = 0  # files that queued at least one job
    nothing_new: int = 0  # files taken that queued nothing (held or taken before)
    refused: int = 0
    last_refusal: str = ""
    urgency: int = 0

    def add(self, p: FileTaken, urgency: int) -> None:
        self.last_at = p.time
        self.files += 1
        self.urgency = max(self.urgency, urgency)
        if p.verdict == FileVerdict.OK:
            self.accounts += len(p.queued)
            if p.queued:
                self.taken += 1
            else:
                self.nothing_new += 1
        else:
            self.refused += 1
            self.last_refusal = f"{p.file}: {p.reason}"

    def bubble(self) -> Bubble:
        parts = []
        if self.accounts:
            parts.append(
                f"Queued {_count(self.accounts, 'account')} from {_count(self.taken, 'file')}; "
                "place a token to burn them."
            )
        if self.nothing_new:
            parts.append(
                f"{_count(self.nothing_new, 'file')} held nothing new (already queued or burned)."
            )
        if self.refused:
            parts.append(
                end_sentence(
                    f"{_count(self.refused, 'file')} refused and moved to failed/, each "
                    f"with its reason beside it (the last: {self.last_refusal.rstrip('.')})"
                )
            )
        summary = f"{self.files} files taken" + (
            f", {self.refused} refused" if self.refused else ""
        )
        return Bubble(self.key, summary, " ".join(parts), urgency=self.urgency)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _sentence(text: str) -> str:
    text = str(text).strip()
    if not text:
        return ""
    return end_sentence(text[0].upper() + text[1:])
