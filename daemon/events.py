"""The station's vocabulary: every fixed set as an enum, every event as a frozen dataclass.

Owns no state. The daemon's features publish these values on the station's event stream;
the D-Bus service turns them into ``a{sv}`` signals at the bus edge only (:func:`to_wire`
and the one table :data:`SIGNALS`), and clients turn signals back into the same types
(:func:`from_signal`), so a renamed field is a type error on both sides, not an empty
bubble. Enum values are the strings on the wire (docs/dbus-api.md); this module is the
one place they are spelled. No event carries a secret: a fingerprint at most.
"""

from __future__ import annotations

import dataclasses
import functools
import time
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any, TypeVar, Union

# ErrorKind and SyncDone.clock_kind are the token layer's enums (values: wire strings).
from tokenstation.daemon.token.problem import ProblemKind
from tokenstation.daemon.token.session import ClockKind

# -- fixed sets ----------------------------------------------------------------------------


class ReaderChange(StrEnum):
    """What the PC/SC presence monitor reports."""

    READER_ADDED = "reader-added"
    READER_REMOVED = "reader-removed"
    CARD_INSERTED = "card-inserted"
    CARD_REMOVED = "card-removed"
    SERVICE_LOST = "service-lost"  # pcscd went away; the monitor keeps retrying
    SERVICE_BACK = "service-back"


class PresenceState(StrEnum):
    """What the card on a reader is, or what the station is doing with it."""

    IDENTIFYING = "identifying"
    TOKEN = "token"
    NOT_A_TOKEN = "not-a-token"
    SYNCING = "syncing"
    BURNING = "burning"
    ERROR = "error"


class SyncVerdict(StrEnum):
    """The policy's view of a measured token's clock."""

    IN_TIME = "in-time"
    DRIFT = "drift"
    READ_ONLY = "read-only"


#: Why a request was not carried out (StationError.kind; D-Bus error names): the one
#: problem type's kinds (``token/problem.py``).
ErrorKind = ProblemKind


class CardKind(StrEnum):
    """What a card that is not a programmable token turned out to be (CardIgnored.kind)."""

    SECURITY_KEY = "security-key"  # a FIDO2/OATH applet answered a read-only SELECT
    OTHER = "other"

    @classmethod
    def parse(cls, text: str) -> CardKind:
        """A card kind as the token layer names it; anything unrecognised is OTHER."""
        try:
            return cls(text)
        except ValueError:
            return cls.OTHER


class FaultKind(StrEnum):
    """The ``kind`` of an Error signal."""

    ERROR = "error"  # a card could not be read
    SERVICE_LOST = "service-lost"  # pcscd went away


class Origin(StrEnum):
    """Who asked for a card write."""

    MANUAL = "manual"
    AUTO = "auto"
    STATION = "station"


class OperationKind(StrEnum):
    """Card writes recorded in the registry."""

    SYNC = "sync"
    BURN = "burn"
    DELETE = "delete"  # a Molto2 profile's seed deleted on request


class Outcome(StrEnum):
    """How a recorded operation ended."""

    OK = "ok"
    FAILED = "failed"
    REFUSED = "refused"


class BurnOutcome(StrEnum):
    """What became of a job whose burn failed."""

    REQUEUED = "requeued"  # nothing known written, or the token left: the job waits again
    FAILED = "failed"  # needs a person
    #: A Molto2 left after the seed write was sent: the job stays burning into its
    #: profile, settled by the profile's seed flag when the Molto2 is back.
    INTERRUPTED = "interrupted"


class FileVerdict(StrEnum):
    """The judgement on a dropped or added file."""

    OK = "ok"
    REJECTED = "rejected"
    ERROR = "error"
    IGNORED = "ignored"


class JobState(StrEnum):
    """A burn job's life: queued -> burning -> burned | failed; or removed."""

    QUEUED = "queued"
    BURNING = "burning"
    BURNED = "burned"
    FAILED = "failed"
    REMOVED = "removed"


# -- values carried inside events ----------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SettingsView:
    """Token settings as sent (hmac label, seconds)."""

    hmac: str
    period: int
    display_timeout: int


@dataclass(frozen=True, kw_only=True)
class JobView:
    """A burn job as the operator sees it: a fingerprint, never the secret."""

    id: int
    state: JobState
    label: str
    issuer: str = ""
    account: str = ""
    algorithm: str = ""
    period: int = 0
    serial: str = ""  # the token it is bound to, or empty
    source: str = ""
    created: float = 0.0
    updated: float = 0.0
    attempts: int = 0
    reason: str = ""
    secret_fingerprint: str = ""
    burned_serial: str | None = None
    target_serial: str | None = None
    burned_at: float | None = None
    station: str | None = None  # where it was queued (stations sharing a queue)
    claimed_by: str | None = None  # the station that burns, burned or tried it
    profile: int | None = None  # the Molto2 profile it went (or was going) into


@dataclass(frozen=True, kw_only=True)
class ProfileView:
    """One Molto2 profile's public data (no secret): index, title, seed present, settings."""

    profile: int
    title: str
    seed_present: bool
    hmac: str
    digits: int
    period: int


@dataclass(frozen=True, kw_only=True)
class PresenceView:
    """What is on one reader: token fields once identified, decision fields once measured."""

    reader: str
    state: PresenceState
    placed_at: float
    detail: str | None = None
    serial: str | None = None
    model: str | None = None
    programmable: bool | None = None
    restricted_sync: bool | None = None
    token_time: int | None = None
    host_time: float | None = None
    drift_s: float | None = None
    drift_uncertainty_s: float | None = None
    drift_method: str | None = None
    drift_words: str | None = None
    precise: bool | None = None
    verdict: SyncVerdict | None = None
    sync_safe: bool | None = None
    sync_offered: bool | None = None
    needs_confirmation: bool | None = None
    auto_sync: bool | None = None
    reason: str | None = None
    settings: SettingsView | None = None
    settings_source: str | None = None
    # The token's family (``daemon/families/``: "single", "molto2") and its words: how
    # views name the token ("Token 123 (C302-i)", "Molto2v2 123") and, for a token with
    # profiles, what it holds ("12 of 100 profiles used").
    family: str | None = None
    name_words: str | None = None
    holds_words: str | None = None
    # A token with profiles (a Molto2): its profiles and how many hold a seed.
    profiles: tuple[ProfileView, ...] | None = None
    profiles_total: int | None = None
    profiles_used: int | None = None
    next_free_profile: int | None = None


# -- events --------------------------------------------------------------------------------


def _now() -> float:
    return round(time.time(), 3)


@dataclass(frozen=True, kw_only=True)
class Event:
    """Something that happened; ``time`` is when it was published."""

    time: float = field(default_factory=_now)


@dataclass(frozen=True, kw_only=True)
class TokenPresented(PresenceView, Event):
    """A token was placed: first read, whole-second drift."""

    event_at: float | None = None  # when the PC/SC event reached the daemon


@dataclass(frozen=True, kw_only=True)
class TokenMeasured(PresenceView, Event):
    """The precise drift and the sync decision."""


@dataclass(frozen=True, kw_only=True)
class DriftDetected(PresenceView, Event):
    """As TokenMeasured, when the drift is beyond the threshold."""


@dataclass(frozen=True, kw_only=True)
class TokenRemoved(Event):
    """A token left its reader."""

    reader: str
    serial: str
    model: str


@dataclass(frozen=True, kw_only=True)
class CardIgnored(Event):
    """A card that is not a programmable token."""

    reader: str
    atr: str
    message: str
    kind: CardKind = CardKind.OTHER


@dataclass(frozen=True, kw_only=True)
class ReaderAdded(Event):
    """A reader appeared."""

    reader: str


@dataclass(frozen=True, kw_only=True)
class ReaderRemoved(Event):
    """A reader went away."""

    reader: str


@dataclass(frozen=True, kw_only=True)
class Fault(Event):
    """Something went wrong (signal ``Error``): a card could not be read, or pcscd left."""

    kind: FaultKind
    message: str
    next_step: str = ""
    reader: str | None = None


@dataclass(frozen=True, kw_only=True)
class ServiceBack(Event):
    """pcscd is back."""

    message: str


@dataclass(frozen=True, kw_only=True)
class CardWriteEvent(Event):
    """The token a card write was about."""

    reader: str
    serial: str
    model: str
    origin: Origin


@dataclass(frozen=True, kw_only=True)
class SyncDone(CardWriteEvent):
    """A clock sync succeeded."""

    drift_before_s: float
    drift_before_words: str
    settings: SettingsView
    settings_source: str
    untrusted_clock_confirmed: bool
    clock_kind: ClockKind = ClockKind.UNKNOWN
    clock_writes: int = 1
    drift_after_s: float | None = None
    drift_after_uncertainty_s: float | None = None
    drift_after_words: str | None = None
    drift_after_bound_s: float | None = None  # how close this kind of clock can be set


@dataclass(frozen=True, kw_only=True)
class SyncFailed(CardWriteEvent):
    """A clock sync was refused or failed."""

    outcome: Outcome
    message: str
    next_step: str = ""


@dataclass(frozen=True, kw_only=True)
class QueueState(Event):
    """The burn queue changed or was paused or resumed."""

    paused: bool
    length: int


@dataclass(frozen=True, kw_only=True)
class FileTaken(Event):
    """A dropped or added file was judged."""

    file: str
    kind: str
    verdict: FileVerdict
    reason: str = ""
    warnings: tuple[str, ...] = ()
    accounts: tuple[Mapping[str, Any], ...] = ()
    queued: tuple[JobView, ...] = ()
    duplicates: tuple[str, ...] = ()
    seen_before: bool | None = None
    moved_to: str | None = None  # refused files: where they went
    next_step: str | None = None


@dataclass(frozen=True, kw_only=True)
class BurnOffered(Event):
    """Attended mode: a waiting job and a measured token."""

    reader: str
    serial: str
    model: str
    job: JobView
    question: str
    warning: str = ""
    profile: int | None = None  # a Molto2: the free profile the job would go into


@dataclass(frozen=True, kw_only=True)
class BurnDone(CardWriteEvent):
    """A seed was burned and the clock read back."""

    job: JobView
    settings: SettingsView
    power_cycle_required: bool
    token_time: int
    expected_code: str | None = None
    expected_code_valid_until: float | None = None
    #: What else is to be known of the burn, e.g. the shared database was away (the
    #: burn is recorded at this station and sent when the database is back).
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class BurnFailed(CardWriteEvent):
    """A burn failed."""

    job: JobView
    outcome: BurnOutcome
    message: str
    next_step: str = ""


@dataclass(frozen=True, kw_only=True)
class ProfileSyncView:
    """One Molto2 profile's clock before and after a sync (whole seconds; None: unknown)."""

    profile: int
    title: str
    drift_before_s: float | None = None
    drift_after_s: float | None = None


@dataclass(frozen=True, kw_only=True)
class ProfilesSynced(CardWriteEvent):
    """The clocks of a Molto2's seeded profiles were set (time only; settings kept)."""

    synced: int
    profiles: tuple[ProfileSyncView, ...] = ()
    drift_before_s: float | None = None  # the largest before, whole seconds
    drift_after_s: float | None = None  # the largest after
    untrusted_clock_confirmed: bool = False
    #: The two figures in the daemon's words ("300 s slow", "in time (whole-second
    #: clock, ±1 s)"): as the log, `profiles`, `sync`, `status` and the tray say them.
    drift_before_words: str | None = None
    drift_after_words: str | None = None


@dataclass(frozen=True, kw_only=True)
class StoreReachability(Event):
    """The shared database went away (no burns; dropped files wait) or came back."""

    reachable: bool
    since: float  # when it went away or came back
    location: str  # the server and database (never a password)
    message: str


@dataclass(frozen=True, kw_only=True)
class ProfileDeleted(PresenceView, Event):
    """A Molto2 profile's seed was deleted on request (its title kept); with the
    presence as it is now (its profiles refreshed), so views update from the event."""

    profile: int
    title: str = ""
    deleted: bool = True  # False: the profile held no seed after all (nothing deleted)
    origin: Origin = Origin.MANUAL


@dataclass(frozen=True, kw_only=True)
class TokenUpdated(PresenceView, Event):
    """A token's presence as it is after a write to it (sync, burn, profile sync,
    delete; done or failed): the drift read back after the write and the new decision
    (no sync offered once in time). Views replace the token's line with it; it asks
    for nothing (no bubble, no auto-sync, no burn offer)."""

    after: OperationKind
    outcome: Outcome = Outcome.OK


@dataclass(frozen=True, kw_only=True)
class GenerateProgress(Event):
    """How far a GenerateJobs call has got, for its caller's progress line: counts only
    (no job, label or seed), told apart by the tag the caller gave (option ``progress``)."""

    request: str
    done: int
    total: int


#: Event type -> D-Bus signal name: the only mapping between the two.
SIGNALS: dict[type[Event], str] = {
    TokenPresented: "TokenPresented",
    TokenMeasured: "TokenMeasured",
    DriftDetected: "DriftDetected",
    TokenRemoved: "TokenRemoved",
    CardIgnored: "CardIgnored",
    SyncDone: "SyncDone",
    SyncFailed: "SyncFailed",
    ReaderAdded: "ReaderAdded",
    ReaderRemoved: "ReaderRemoved",
    Fault: "Error",
    ServiceBack: "ServiceBack",
    QueueState: "QueueState",
    FileTaken: "FileTaken",
    BurnOffered: "BurnOffered",
    BurnDone: "BurnDone",
    BurnFailed: "BurnFailed",
    ProfilesSynced: "ProfilesSynced",
    StoreReachability: "StoreReachability",
    ProfileDeleted: "ProfileDeleted",
    TokenUpdated: "TokenUpdated",
    GenerateProgress: "GenerateProgress",
}
EVENTS: dict[str, type[Event]] = {name: kind for kind, name in SIGNALS.items()}


# -- the codec: dataclass <-> plain dict ---------------------------------------------------

D = TypeVar("D")


class DecodeError(ValueError):
    """A payload that does not fit its type (missing key, wrong value)."""


_PLAIN = (str, int, float, bool)
_FIELDS: dict[type, tuple[str, ...]] = {}


def to_wire(value: Any) -> dict[str, object]:
    """A view or event -> a plain dict (None fields left out, enums as their strings)."""
    cls = type(value)
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(value))
    out: dict[str, object] = {}
    for name in names:
        v = getattr(value, name)
        if v is None:
            continue
        if type(v) is float:
            v += 0.0  # never a "-0.0" in a view: -0.0 + 0.0 is 0.0
        out[name] = v if type(v) in _PLAIN else _plain(v)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if hasattr(type(value), "__dataclass_fields__"):
        return to_wire(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if type(value) is float:
        return value + 0.0
    return value


def decode(cls: type[D], data: Mapping[str, Any]) -> D:
    """A plain dict -> ``cls``; unknown keys are ignored (newer daemons may add some)."""
    kwargs: dict[str, Any] = {}
    for name, convert in _converters(cls).items():
        if name in data:
            try:
                kwargs[name] = convert(data[name])
            except (TypeError, ValueError) as exc:
                raise DecodeError(f"{cls.__name__}.{name}: {exc}") from None
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise DecodeError(f"{cls.__name__}: {exc}") from None


def from_signal(name: str, data: Mapping[str, Any]) -> Event | None:
    """A station signal's name and unpacked payload -> its event (None: not ours)."""
    kind = EVENTS.get(name)
    return decode(kind, data) if kind is not None else None


Converter = Callable[[Any], Any]
_CONVERTERS: dict[Any, dict[str, Converter]] = {}


def _converters(cls: Any) -> dict[str, Converter]:
    """Field name -> the function checking and converting its value (built once per type)."""
    if cls not in _CONVERTERS:
        names = {f.name for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        _CONVERTERS[cls] = {k: _converter(v) for k, v in hints.items() if k in names}
    return _CONVERTERS[cls]


def _converter(tp: Any) -> Converter:
    origin = typing.get_origin(tp)
    if origin is Union or origin is types.UnionType:
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return _converter(inner)
    if origin is tuple:
        item = _converter(typing.get_args(tp)[0])

        def items(value: Any) -> tuple[Any, ...]:
            if not isinstance(value, list | tuple):
                raise ValueError(f"expected a list, got {type(value).__name__}")
            return tuple(item(v) for v in value)

        return items
    if origin is not None and issubclass(origin, Mapping):
        return _mapping
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        nested = tp

        def view(value: Any) -> Any:
            return decode(nested, _mapping(value))

        return view
    if isinstance(tp, type) and issubclass(tp, Enum):
        return tp
    if tp is float:
        return _number
    if tp in (int, bool, str):
        return functools.partial(_exact, tp)
    return _same


def _mapping(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a dict, got {type(value).__name__}")
    return dict(value)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def _exact(tp: type, value: Any) -> Any:
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise ValueError(f"expected {tp.__name__}, got {value!r}")
    return value


def _same(value: Any) -> Any:
    return value
