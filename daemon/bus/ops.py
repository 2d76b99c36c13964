"""The logic behind the D-Bus methods, kept out of bus.py so linters check all of it.

Errors become ``org.tokenstation.TokenStation1.Error.*`` with text for people; options
dictionaries are checked here.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, TypeVar

from tokenstation.daemon.bus import dbusio
from tokenstation.daemon.bus.dbusio import DBusError, ProblemError
from tokenstation.daemon.bus.names import INTERFACE, error_name
from tokenstation.daemon.events import SIGNALS, ErrorKind, Event, JobState, to_wire
from tokenstation.daemon.safetext import clip, shown_name
from tokenstation.daemon.station import Station, StationError
from tokenstation.daemon.storage.database import StoreUnavailable
from tokenstation.daemon.token.errors import InvalidInput
from tokenstation.daemon.token.settings import HmacAlgorithm, TokenSettings

log = logging.getLogger("tokenstation.daemon.bus.interface")

if TYPE_CHECKING:
    from tokenstation.daemon.provisioning.provisioner import Provisioner

T = TypeVar("T")
D = TypeVar("D")

_SYNC_OPTIONS = {"reader", "confirm_untrusted_clock", "algorithm", "period", "display_timeout"}


def dbus_error(exc: StationError) -> Exception:
    """A StationError as the D-Bus error the client sees: the message and the next step,
    each its own string of the reply."""
    if _leaky(exc.message + exc.next_step):  # never in a sentence of ours; in an exception's
        return _internal()
    result: Exception = ProblemError(error_name(exc.kind), exc.message, exc.next_step)
    return result


#: What an error reply must never hold: a traceback, a source file, an exception's name.
_LEAKS = ("Traceback", 'File "', '.py"', "Exception")


def _leaky(text: str) -> bool:
    return any(mark in text for mark in _LEAKS)


def _internal() -> Exception:
    result: Exception = ProblemError(
        error_name(ErrorKind.FAILED),
        "the daemon could not answer this because of an internal error",
        "Try again; if it persists, see the daemon's log (journalctl -u tokenstation) "
        "and report it.",
    )
    return result


def bus_error(name: str, exc: Exception) -> Exception:
    """The one mapping from anything a method or property getter raised to the D-Bus error
    its caller sees: one sentence and a next step, never a traceback, a file path or an
    exception's name. The log gets a sentence (the traceback at DEBUG only)."""
    if isinstance(exc, DBusError):  # an argument refused by our checks: already a sentence
        ours = str(getattr(exc, "type", "")).startswith(INTERFACE + ".Error.")
        return exc if ours and not _leaky(str(getattr(exc, "text", ""))) else _internal()
    if isinstance(exc, StationError):
        return dbus_error(exc)
    if isinstance(exc, StoreUnavailable):
        log.info("%s: not answered: %s", name, exc)
        result: Exception = ProblemError(
            error_name(ErrorKind.FAILED),
            f"{exc.brief}, so this cannot be answered now",
            "Try again once `tokenstation status` says the shared database is reachable.",
        )
        return result
    log.warning("%s failed unexpectedly (%s); the traceback is logged at debug level", name, exc)
    log.debug("%s failed", name, exc_info=exc)
    return _internal()


F = TypeVar("F", bound=Callable[..., Any])


def edge(fn: F) -> F:
    """A D-Bus method or property getter, its failures answered by :func:`bus_error`
    (put under ``@method()`` or ``@dbus_property()``; the signature is kept)."""
    name = fn.__name__
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def guarded_async(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                raise bus_error(name, exc) from None

        return guarded_async  # type: ignore[return-value]

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise bus_error(name, exc) from None

    return guarded  # type: ignore[return-value]


def signal_of(event: Event, system_bus: bool) -> tuple[str, dict[str, Any]]:
    """An event -> its signal's name and ``a{sv}`` payload (the bus edge; one table),
    bounded and, on the system bus, without the live code (:func:`for_broadcast`)."""
    return SIGNALS[type(event)], dbusio.pack(for_broadcast(to_wire(event), system_bus))


def properties(station: Station, provisioner: Provisioner) -> dict[str, Any]:
    """The interface's changing properties, D-Bus-ready (compared to emit what changed)."""
    return {
        "Readers": sorted(station.readers),
        "Present": [dbusio.pack(p) for p in station.present()],
        "Paused": provisioner.paused,
        "QueueLength": provisioner.queue_length(),  # held: counted at each queue change
    }


def status(station: Station, provisioner: Provisioner) -> dict[str, object]:
    """GetStatus: the station's part and the provisioner's."""
    return {**station.status(), **provisioner.status()}


async def answer(name: str, call: Callable[[], Awaitable[Event | dict[str, object]]]) -> Any:
    """Await a station call for a D-Bus method: its result packed, its errors mapped by
    :func:`bus_error` (no traceback, or anything else from the daemon's memory, crosses
    the bus)."""
    try:
        result = await call()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        raise bus_error(name, exc) from None
    return dbusio.pack(to_wire(result) if isinstance(result, Event) else result)


def sync_options(options: dict[str, Any]) -> dict[str, Any]:
    """SyncToken's options dict -> keyword arguments of ClockSync.sync (or StationError)."""
    opts = dbusio.unpack(options)
    refuse_unknown(opts, _SYNC_OPTIONS)
    for key, kind in _OPTION_TYPES.items():  # every given option's type, before anything else
        _option(opts, key, kind, None)
    kwargs: dict[str, Any] = {
        "reader": _option(opts, "reader", str, ""),
        "confirm_untrusted_clock": _option(opts, "confirm_untrusted_clock", bool, False),
    }
    given = [k for k in ("algorithm", "period", "display_timeout") if k in opts]
    if given:
        if len(given) != 3:
            raise StationError(
                ErrorKind.INVALID,
                "algorithm, period and display_timeout go together: a clock write rewrites "
                "all three",
                "Give all three, or none to use what the station knows.",
            )
        try:
            kwargs["settings"] = TokenSettings(
                HmacAlgorithm.parse(_option(opts, "algorithm", str, "")),
                _option(opts, "period", int, 0),
                _option(opts, "display_timeout", int, 0),
            )
        except (InvalidInput, ValueError) as exc:
            raise StationError(ErrorKind.INVALID, str(exc)) from None
    return kwargs


_TYPE_WORDS = {str: "a string", bool: "true or false", int: "a whole number"}
_OPTION_TYPES: dict[str, type] = {
    "reader": str,
    "confirm_untrusted_clock": bool,
    "algorithm": str,
    "period": int,
    "display_timeout": int,
}


def _option(opts: dict[str, Any], key: str, kind: type[T], default: D) -> T | D:
    """An option of the expected type (a string is never taken for a number), bounded."""
    if key not in opts:
        return default
    value = opts[key]
    if type(value) is not kind:  # bool is an int subclass: exact types only
        got = _TYPE_WORDS.get(type(value), type(value).__name__)
        raise StationError(
            ErrorKind.INVALID, f"option {key}: must be {_TYPE_WORDS[kind]}, got {got}", ""
        )
    if isinstance(value, str) and len(value) > MAX_ARG.get(key, 256):
        raise StationError(
            ErrorKind.INVALID, f"option {key}: {len(value)} characters, over the limit", ""
        )
    return value


# -- hostile clients: bounded arguments and signals ------------------------------------

#: Longest string argument per kind; a longer one is refused with its length only.
MAX_ARG = {"serial": 64, "reader": 256, "name": 1024, "algorithm": 16}
#: Items of a list a signal carries; the rest is counted (``<key>_count``), never sent.
SIGNAL_SAMPLE = 20
#: Longest string a signal carries.
SIGNAL_TEXT = 2000
#: Jobs per ListJobs page at most (and by default).
MAX_PAGE = 1000
DEFAULT_PAGE = 100
#: Keys only the caller of BurnJob (or a listener on a per-user session bus) may see:
#: the code the token will show, valid for a time step.
LIVE_CODE_KEYS = ("expected_code", "expected_code_valid_until")


def refuse_unknown(opts: dict[str, Any], known: Iterable[str]) -> None:
    """StationError INVALID naming the options (up to five) that are not ``known``."""
    names = set(known)
    unknown = sorted(set(opts) - names)
    if unknown:
        raise StationError(
            ErrorKind.INVALID,
            f"unknown option(s) {', '.join(clip(k, 40) for k in unknown[:5])}",
            f"Known: {', '.join(sorted(names))}.",
        )


def arg_text(what: str, value: object) -> str:
    """A string argument checked for type and length; never echoed back when refused."""
    limit = MAX_ARG.get(what, 256)
    if not isinstance(value, str):
        raise DBusError(
            error_name(ErrorKind.INVALID), f"{what}: must be a string, got {type(value).__name__}"
        )
    if len(value) > limit:
        raise DBusError(
            error_name(ErrorKind.INVALID),
            f"{what}: {len(value)} characters, over the limit of {limit}. Check the value.",
        )
    return value


def bounded(value: Any) -> Any:
    """A payload with every list cut to a sample (the full length in ``<key>_count``) and
    every string clipped: what goes into one signal stays small whatever the file held."""
    if isinstance(value, str):
        return value if len(value) <= SIGNAL_TEXT else value[:SIGNAL_TEXT] + "..."
    if isinstance(value, list | tuple):
        return [bounded(v) for v in value[:SIGNAL_SAMPLE]]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out[k] = bounded(v)
            if isinstance(v, list | tuple) and len(v) > SIGNAL_SAMPLE:
                out[f"{k}_count"] = len(v)
        return out
    return value


def for_broadcast(payload: dict[str, object], system_bus: bool) -> dict[str, object]:
    """A signal's payload as every listener may see it: bounded, and on the system bus
    (where anyone listens) without the live code a freshly burned token will show."""
    out: dict[str, object] = bounded(payload)
    if system_bus:
        for key in LIVE_CODE_KEYS:
            out.pop(key, None)
    return out


def page_args(offset: object, limit: object) -> tuple[int, int]:
    """ListJobs' offset and limit (0 = the default page), checked."""
    for what, v in (("offset", offset), ("limit", limit)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise DBusError(error_name(ErrorKind.INVALID), f"{what}: must be a whole number >= 0")
    assert isinstance(offset, int) and isinstance(limit, int)
    return offset, min(limit or DEFAULT_PAGE, MAX_PAGE)


def job_states(states: object) -> list[str] | None:
    """ListJobs' states filter (empty = every state), checked against the known states."""
    known = tuple(state.value for state in JobState)
    if not isinstance(states, list) or not all(isinstance(s, str) for s in states):
        raise DBusError(error_name(ErrorKind.INVALID), "states: must be a list of strings")
    unknown = [s for s in states if s not in known]
    if unknown:
        raise DBusError(
            error_name(ErrorKind.INVALID),
            f"states: {len(unknown)} unknown state(s); known: {', '.join(known)}",
        )
    return list(states) or None


#: The methods that take a file descriptor: IngestFile(h file, s name) takes one, and
#: BurnAccount(h file, s name, s serial, a{sv} options) one.
DAEMON_TAKES_FDS = {(INTERFACE, "IngestFile", "hs"): 1, (INTERFACE, "BurnAccount", "hssa{sv}"): 1}


async def ingest_from_fd(prov: Provisioner, fd: object, name: object) -> dict[str, object]:
    """IngestFile: the file the caller opened and passed (its descriptor is closed by the
    Provisioner, or here when the arguments are refused), judged by the suffix of ``name``.
    The daemon never opens a path for a caller."""
    try:
        if isinstance(fd, bool) or not isinstance(fd, int) or fd < 0:
            raise DBusError(
                error_name(ErrorKind.INVALID), "file: must be a file descriptor (type h)"
            )
        base = PurePosixPath(arg_text("name", name)).name
        if not base:
            raise DBusError(
                error_name(ErrorKind.INVALID), "name: give the file's name (e.g. alice.png)"
            )
    except BaseException:
        if isinstance(fd, int) and not isinstance(fd, bool) and fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
        raise
    taken = await prov.intake.ingest(fd, shown_name(base))
    reply: dict[str, object] = bounded(to_wire(taken))
    return reply


_BURN_OPTIONS = {"profile": int, "title": str, "replace": bool, "display_timeout": int}


async def burn_account_from_fd(
    prov: Provisioner, fd: object, name: object, serial: object, options: dict[str, Any]
) -> dict[str, object]:
    """BurnAccount: the file the caller opened (closed here or by the intake), its one
    account burned into options' ``profile`` (absent: the next free one) of the Molto2
    ``serial``, titled options' ``title`` (absent: issuer:account, cut); or onto the
    single-profile token ``serial`` (options ``replace``, ``display_timeout``)."""
    from tokenstation.daemon.provisioning.molto2_account import SingleOptions, burn_account

    try:
        if isinstance(fd, bool) or not isinstance(fd, int) or fd < 0:
            raise DBusError(
                error_name(ErrorKind.INVALID), "file: must be a file descriptor (type h)"
            )
        base = PurePosixPath(arg_text("name", name)).name
        who = arg_text("serial", serial)
        opts = dbusio.unpack(options)
        refuse_unknown(opts, _BURN_OPTIONS)
        profile = _option(opts, "profile", int, None)
        title = _option(opts, "title", str, None)
        single = SingleOptions(
            replace=_option(opts, "replace", bool, False),
            display_timeout=_option(opts, "display_timeout", int, None),
        )
    except BaseException:
        if isinstance(fd, int) and not isinstance(fd, bool) and fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
        raise
    done = await burn_account(
        prov,
        fd,
        shown_name(base) or "account.txt",
        who,
        profile=profile,
        title=title,
        single=single,
    )
    return to_wire(done)
