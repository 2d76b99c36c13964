"""Token operations over an abstract connection: identify, measure drift, set clock, burn.

The connection is anything with ``transmit(apdu, redact=False) -> response bytes``
that raises :class:`TransportError` when the link fails; the host clock is passed in,
so everything here is testable without a reader.

Safety rules enforced here (token-protocol.md section 5):
- one authentication per session, never retried after a refusal;
- no write to a model that is not identified with a known key;
- no clock write on a restricted model unless the seed is re-burned in the same session;
- a failed transmit is never taken as success; writes are verified by reading back.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from tokenstation.daemon.token import commands
from tokenstation.daemon.token.apdu import Response
from tokenstation.daemon.token.commands import ChallengeForm, PublicInfo
from tokenstation.daemon.token.crypto import CHALLENGE_LENGTH, check_seed
from tokenstation.daemon.token.errors import (
    AuthenticationRefused,
    CardLost,
    MalformedResponse,
    NotAToken,
    RefusedByPolicy,
    RestrictedSync,
    StatusWordError,
    TokenError,
    TransportError,
    UnknownModel,
    VerificationFailed,
    error_for,
    security_key_words,
)
from tokenstation.daemon.token.models import Model, ModelTable
from tokenstation.daemon.token.secret import Secret
from tokenstation.daemon.token.settings import TokenSettings

log = logging.getLogger(__name__)

#: Largest |token - host| accepted right after a clock write (whole-second reads).
CLOCK_VERIFY_TOLERANCE_S = 1.5
#: What a sync promises: a phase-resetting clock lands this close to the host's...
RESETTING_BOUND_S = 0.1
#: ...a phase-keeping one only this close (whole seconds on top of a kept sub-second phase).
KEEPING_BOUND_S = 0.5
#: A measured residual this close to a kind's prediction fits that kind.
KIND_MATCH_S = 0.1
#: Clock writes one sync may take: the timed write, and one correction.
MAX_CLOCK_WRITES = 2


class ClockKind(StrEnum):
    """What a token's clock does with its sub-second phase when a new second is written.

    The firmware core leaves it to the RTC chip (token-protocol.md section 10): a
    phase-resetting clock starts the written second when the write arrives, a
    phase-keeping one keeps ticking on its old sub-second boundaries.
    """

    PHASE_RESETTING = "phase-resetting"
    PHASE_KEEPING = "phase-keeping"
    UNKNOWN = "unknown"

    @property
    def bound_s(self) -> float:
        """How close to the host a sync can bring this kind of clock."""
        return KEEPING_BOUND_S if self is ClockKind.PHASE_KEEPING else RESETTING_BOUND_S

    @classmethod
    def parse(cls, text: str | None) -> ClockKind:
        """A stored or given kind; anything unrecognised is UNKNOWN."""
        try:
            return cls(text) if text else cls.UNKNOWN
        except ValueError:
            return cls.UNKNOWN


class Connection(Protocol):
    """One card session: send a command APDU, get the response APDU (data + SW)."""

    def transmit(self, apdu: bytes, *, redact: bool = False) -> bytes:
        """Exchange one APDU. ``redact`` asks the transport not to trace the body."""
        ...


class HostClock(Protocol):
    """The trusted host clock and a way to wait."""

    def time(self) -> float:
        """UTC seconds since the epoch."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds``."""
        ...


class SystemClock:
    """The host clock: wall time anchored once, advanced by the monotonic clock.

    Anchoring keeps one measurement consistent even if NTP steps the wall clock
    halfway through it.
    """

    def __init__(self) -> None:
        self._wall0 = time.time()
        self._mono0 = time.monotonic()

    def time(self) -> float:
        """UTC seconds, monotonic within this object's life."""
        return self._wall0 + (time.monotonic() - self._mono0)

    def sleep(self, seconds: float) -> None:
        """Sleep (non-positive values return at once)."""
        if seconds > 0:
            time.sleep(seconds)


@dataclass(frozen=True)
class TimedInfo:
    """A GET INFO answer with the host times bracketing it."""

    info: PublicInfo
    sent: float
    received: float

    @property
    def midpoint(self) -> float:
        """Best single host time for the token's reading."""
        return (self.sent + self.received) / 2


@dataclass(frozen=True)
class DriftEstimate:
    """token clock - host clock, in seconds, with its half-width uncertainty."""

    drift_s: float
    uncertainty_s: float
    reads: int
    method: str  # "rollover" (sub-second) or "single-read" (whole seconds only)

    def describe(self) -> str:
        """Plain words: '37.4 s fast', '2.0 s slow', 'in time'."""
        return describe_drift(self.drift_s)


def describe_drift(drift_s: float) -> str:
    """'37.4 s fast' / '2.0 s slow' / 'in time' (under 0.05 s either way)."""
    shown = round(drift_s, 1)
    if shown == 0:
        return "in time"
    return f"{abs(shown):.1f} s {'fast' if shown > 0 else 'slow'}"


@dataclass(frozen=True)
class Identification:
    """Who the token is and how far its clock is off."""

    serial: str
    model: Model
    token_time: int
    host_time: float
    drift: DriftEstimate
    info_form: commands.InfoForm = commands.InfoForm.TAGGED

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form (no secrets exist here)."""
        return {
            "serial": self.serial,
            "model": self.model.name,
            "programmable": self.model.programmable,
            "restricted_sync": self.model.restricted_sync,
            "token_time": self.token_time,
            "host_time": round(self.host_time, 3),
            "drift_s": round(self.drift.drift_s, 1),
            "drift_uncertainty_s": round(self.drift.uncertainty_s, 3),
            "drift_method": self.drift.method,
            "info_form": self.info_form.value,
        }


@dataclass(frozen=True)
class WriteResult:
    """What a clock write or a burn did, as verified by reading the clock back."""

    serial: str
    model: Model
    settings: TokenSettings
    written_time: int
    token_time_after: int
    host_time_after: float
    seed_fingerprint: str | None = None
    residual: DriftEstimate | None = None
    apdus: int = 0
    clock_kind: ClockKind = ClockKind.UNKNOWN
    clock_writes: int = 1

    @property
    def drift_bound_s(self) -> float:
        """How close to the host this token's kind of clock can be set."""
        return self.clock_kind.bound_s

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form: a fingerprint at most, never the seed."""
        out: dict[str, object] = {
            "serial": self.serial,
            "model": self.model.name,
            "restricted_sync": self.model.restricted_sync,
            "settings": self.settings.as_dict(),
            "written_time": self.written_time,
            "token_time": self.token_time_after,
            "host_time": round(self.host_time_after, 3),
        }
        if self.seed_fingerprint is not None:
            out["secret_fingerprint"] = self.seed_fingerprint
        out["clock_kind"] = self.clock_kind.value
        out["clock_writes"] = self.clock_writes
        if self.residual is not None:
            out["drift_s"] = round(self.residual.drift_s, 1)
            out["drift_precise_s"] = round(self.residual.drift_s, 3)
            out["drift_uncertainty_s"] = round(self.residual.uncertainty_s, 3)
            out["drift_bound_s"] = self.drift_bound_s
        return out


@dataclass
class SessionStats:
    """Counters for benchmarks and diagnostics."""

    apdus: int = 0
    last_rtt_s: list[float] = field(default_factory=list)

    @property
    def one_way_latency_s(self) -> float:
        """Half the median round trip of recent exchanges (0 before any)."""
        if not self.last_rtt_s:
            return 0.0
        rtts = sorted(self.last_rtt_s[-9:])
        return rtts[len(rtts) // 2] / 2


def authentication_due(state: str) -> bool:
    """Whether a session whose authentication is in ``state`` (none | ok | refused) should
    authenticate now: False once it has; RefusedByPolicy after a refusal, which is final
    for the session (one authentication per session, never retried)."""
    if state == "refused":
        raise RefusedByPolicy(
            "authentication was already refused in this session and is never retried",
            AuthenticationRefused.next_step,
        )
    return state != "ok"


def exchange(
    conn: Connection,
    clock: HostClock,
    stats: SessionStats,
    name: str,
    apdu: bytes,
    *,
    device: str = "token",
    redact: bool = False,
    allowed: tuple[int, ...] = (),
) -> Response:
    """Send one APDU named ``name``, counting it and its round trip in ``stats``.

    A failed transmit is :class:`CardLost` ("the ``device`` stopped answering"); a status
    word that is neither 90 00 nor in ``allowed`` raises the typed error for it.
    """
    t0 = clock.time()
    try:
        raw = conn.transmit(apdu, redact=redact)
    except TransportError as exc:
        raise CardLost(f"the {device} stopped answering during {name}: {exc.message}") from exc
    stats.apdus += 1
    stats.last_rtt_s.append(clock.time() - t0)
    resp = Response.decode(raw)
    if not resp.ok and resp.sw not in allowed:
        raise error_for(name, resp.sw)
    return resp


class TokenSession:
    """Operations on the token present on one connection (one card session)."""

    def __init__(
        self,
        connection: Connection,
        models: ModelTable | None = None,
        clock: HostClock | None = None,
        challenge_form: ChallengeForm = ChallengeForm.TOKEN2,
        select: bool = False,
    ) -> None:
        self._conn = connection
        self._models = models if models is not None else ModelTable()
        self._clock = clock if clock is not None else SystemClock()
        self._challenge_form = challenge_form
        self._select = select
        self._selected = False
        self._auth_state: str = "none"  # none | ok | refused
        self._seed_written = False
        self.stats = SessionStats()

    # -- the exchange ------------------------------------------------------------------

    def _exchange(self, name: str, apdu: bytes, *, redact: bool = False) -> bytes:
        """Send one APDU; return its data or raise the typed error for its status word."""
        return exchange(self._conn, self._clock, self.stats, name, apdu, redact=redact).data

    def _maybe_select(self) -> None:
        if self._select and not self._selected:
            self._exchange("SELECT", commands.SELECT)
            self._selected = True

    # -- reading -------------------------------------------------------------------------

    def read_info(self) -> TimedInfo:
        """GET INFO with the host times around it. No authentication is involved."""
        self._maybe_select()
        sent = self._clock.time()
        data = self._exchange("GET INFO", commands.GET_INFO)
        received = self._clock.time()
        return TimedInfo(commands.parse_info(data), sent, received)

    def read_first(self) -> TimedInfo:
        """The session's first GET INFO; a card that fails it is named and left alone.

        When GET INFO is refused or answered with bytes of neither layout, the card is
        asked (read-only SELECTs, nothing else) whether it holds a FIDO2 or an OATH
        applet, and :class:`NotAToken` says what it is. The token key is never sent.
        """
        try:
            return self.read_info()
        except (StatusWordError, MalformedResponse) as exc:
            raise self._not_a_token(exc) from exc

    def _not_a_token(self, cause: TokenError) -> NotAToken:
        applets: list[str] = []
        for name, aid in (("fido2", commands.FIDO_AID), ("oath", commands.YKOATH_AID)):
            try:
                self._exchange(f"SELECT {name.upper()}", commands.select_aid(aid))
            except (StatusWordError, MalformedResponse):
                continue
            except TransportError:
                break  # the card left: say what is known
            applets.append(name)
        if applets:
            return NotAToken(
                f"this card is {security_key_words(tuple(applets))}",
                "tokenstation wrote nothing to it.",
                card_kind="security-key",
                applets=tuple(applets),
            )
        return NotAToken(f"this card is not a programmable token ({cause.message})")

    def measure_drift(
        self,
        first: TimedInfo | None = None,
        *,
        precise: bool = True,
        poll_interval_s: float = 0.025,
        max_wait_s: float = 1.6,
    ) -> DriftEstimate:
        """token - host in seconds, to sub-second precision by timing a seconds rollover.

        The token reports whole seconds. One read bounds the offset to a one-second
        window; reading again every ``poll_interval_s`` until the reported second
        changes brackets the token's second boundary between two reads, which pins
        the offset to about half the poll interval plus the round trip.
        """
        prev = first if first is not None else self.read_info()
        coarse = single_read_estimate(prev)
        if not precise:
            return coarse
        reads = 1
        deadline = self._clock.time() + max_wait_s
        while self._clock.time() < deadline:
            self._clock.sleep(poll_interval_s)
            cur = self.read_info()
            reads += 1
            step = cur.info.token_time - prev.info.token_time
            if step == 0:
                prev = cur
                continue
            if step != 1:
                # The clock jumped (or went back): start over from this reading once.
                log.debug("token clock jumped by %d s during drift measurement", step)
                prev = cur
                continue
            boundary_lo, boundary_hi = prev.sent, cur.received
            boundary = (boundary_lo + boundary_hi) / 2
            return DriftEstimate(
                drift_s=cur.info.token_time - boundary,
                uncertainty_s=(boundary_hi - boundary_lo) / 2,
                reads=reads,
                method="rollover",
            )
        log.warning(
            "the token's clock did not tick within %.1f s; drift is whole-second", max_wait_s
        )
        return DriftEstimate(coarse.drift_s, coarse.uncertainty_s, reads, "single-read")

    def identify(
        self,
        *,
        precise: bool = True,
        on_first: Callable[[TimedInfo, Model], bool | None] | None = None,
        first: TimedInfo | None = None,
    ) -> Identification:
        """Serial, model, token and host time, and the drift between them.

        ``on_first`` is called with the first reading and the model before the precise
        measurement starts (the daemon announces the token from it at once); when it
        returns False, the drift is what that one read bounds (a burn is about to set
        the clock and measures it after). ``first``: a :meth:`read_first` already made
        on this session.
        """
        first = first if first is not None else self.read_first()
        model = self._models.lookup(first.info.serial)
        if on_first is not None and on_first(first, model) is False:
            precise = False
        drift = self.measure_drift(first, precise=precise)
        return Identification(
            serial=first.info.serial,
            model=model,
            token_time=first.info.token_time,
            host_time=first.midpoint,
            drift=drift,
            info_form=first.info.form,
        )

    # -- writing -------------------------------------------------------------------------

    def _writable_model(self, info: PublicInfo) -> Model:
        model = self._models.lookup(info.serial)
        if not model.programmable:
            raise UnknownModel(
                f"token {info.serial} is not a model tokenstation knows how to program "
                f"(no serial prefix in the model table matches)"
            )
        return model

    def authenticate(self, model: Model) -> None:
        """GET CHALLENGE + AUTHENTICATE, once. A refusal is final for this session."""
        if not authentication_due(self._auth_state):
            return
        key = model.family.key
        if key is None:  # guarded by _writable_model; kept for type narrowing
            raise UnknownModel(f"no key is known for {model.name}")
        challenge = self._exchange("GET CHALLENGE", commands.get_challenge(self._challenge_form))
        if len(challenge) != CHALLENGE_LENGTH:
            raise MalformedResponse(f"challenge is {len(challenge)} bytes, expected 8")
        try:
            self._exchange("AUTHENTICATE", commands.authenticate(key, challenge))
        except AuthenticationRefused:
            self._auth_state = "refused"
            raise
        self._auth_state = "ok"

    def _timed_config_write(self, key: bytes, settings: TokenSettings) -> int:
        """Write the config so the token's new second starts on a host second boundary.

        The value written is the host second at which the APDU is expected to reach
        the token; the send is delayed until one one-way latency before it.
        """
        latency = self.stats.one_way_latency_s
        now = self._clock.time()
        target = math.ceil(now + latency + 0.005)
        self._clock.sleep(target - latency - self._clock.time())
        self._exchange("WRITE CONFIG", commands.write_config(key, settings, target))
        return target

    def set_clock(
        self,
        settings: TokenSettings,
        *,
        seed: Secret | None = None,
        measure_after: bool = True,
        expect_serial: str | None = None,
        clock_kind: ClockKind = ClockKind.UNKNOWN,
        before: DriftEstimate | None = None,
        measure_before: bool = True,
    ) -> WriteResult:
        """Set the token's clock to the host's, rewriting ``settings`` (they cannot be read).

        Refused on restricted-sync models unless ``seed`` is given: the clock write
        erases the seed there, so it is re-burned in the same card session. With
        ``expect_serial``, refused before authenticating if another token answers.

        With ``measure_after`` the write is phase-aware: the drift is measured again
        after it, and a token whose clock kept its sub-second phase gets one more
        write with the whole second that leaves the smallest error. ``clock_kind``
        is what is known of this token's clock (a known phase-keeping clock takes one
        write); ``before`` is a fresh precise drift measurement, if the caller has one.
        ``measure_before`` False: no precise measurement first even without one (a burn
        right after a placement): the write is timed to the host's second, which sets a
        phase-resetting clock at once; a clock that kept its phase shows it in the
        measurement after and gets its second write from that.
        """
        if seed is not None:
            check_seed(seed)
        first = self.read_first()
        info = first.info
        _check_serial(info, expect_serial)
        model = self._writable_model(info)
        if model.restricted_sync and seed is None:
            raise RestrictedSync(
                f"{model.name} token {info.serial} erases its seed when its clock is set"
            )
        return self._write(
            model,
            first,
            settings,
            seed,
            measure_after=measure_after,
            clock_kind=clock_kind,
            before=before,
            measure_before=measure_before,
        )

    def burn(
        self,
        seed: Secret,
        settings: TokenSettings,
        *,
        measure_after: bool = False,
        expect_serial: str | None = None,
        clock_kind: ClockKind = ClockKind.UNKNOWN,
        before: DriftEstimate | None = None,
        measure_before: bool = True,
    ) -> WriteResult:
        """Program ``seed`` with ``settings`` and the host's time, then verify the clock.

        With ``measure_after`` the clock write is phase-aware, as in :meth:`set_clock`
        (``before``: the drift already measured, so it is not measured again;
        ``measure_before`` False: not measured first at all).
        """
        return self.set_clock(
            settings,
            seed=seed,
            measure_after=measure_after,
            expect_serial=expect_serial,
            clock_kind=clock_kind,
            before=before,
            measure_before=measure_before,
        )

    def _write(
        self,
        model: Model,
        first: TimedInfo,
        settings: TokenSettings,
        seed: Secret | None,
        *,
        measure_after: bool,
        clock_kind: ClockKind = ClockKind.UNKNOWN,
        before: DriftEstimate | None = None,
        measure_before: bool = True,
    ) -> WriteResult:
        info = first.info
        if settings.hmac not in model.algorithms or settings.period not in model.periods:
            raise RefusedByPolicy(f"{model.name} cannot hold {settings.as_dict()}")
        # The kind is judged against the drift before the write (and a phase-keeping
        # clock is set from it), so it has to be known to a fraction of a second.
        needs_before = measure_before and (before is None or before.method != "rollover")
        if measure_after and clock_kind is not ClockKind.PHASE_RESETTING and needs_before:
            before = self.measure_drift(first)
        self.authenticate(model)
        key = model.family.key
        assert key is not None  # authenticate() refused otherwise
        plan = _WritePlan.for_kind(clock_kind, before)
        kind = clock_kind
        writes = 0
        residual: DriftEstimate | None = None
        while True:
            written, predicted = self._clock_write(key, model, info, settings, seed, plan=plan)
            writes += 1
            back = self._verify_clock(info)
            if not measure_after:
                break
            residual = self.measure_drift(back)
            kind = predicted.classify(residual.drift_s, kind)
            if abs(residual.drift_s) <= kind.bound_s or writes >= MAX_CLOCK_WRITES:
                break
            log.info(
                "token %s: %s clock is %+.3f s off after write %d; writing once more",
                info.serial,
                kind.value,
                residual.drift_s,
                writes,
            )
            plan = _WritePlan.for_kind(kind, residual)
        return WriteResult(
            serial=info.serial,
            model=model,
            settings=settings,
            written_time=written,
            token_time_after=back.info.token_time,
            host_time_after=back.midpoint,
            seed_fingerprint=seed.fingerprint if seed is not None else None,
            residual=residual,
            apdus=self.stats.apdus,
            clock_kind=kind,
            clock_writes=writes,
        )

    def _clock_write(
        self,
        key: bytes,
        model: Model,
        info: PublicInfo,
        settings: TokenSettings,
        seed: Secret | None,
        *,
        plan: _WritePlan,
    ) -> tuple[int, _Prediction]:
        """One config write as planned (and the seed after it where it has to follow)."""
        try:
            if plan.keep_phase_of is None:
                written = self._timed_config_write(key, settings)
            else:
                written = self._phase_keeping_config_write(key, settings, plan.keep_phase_of)
        except CardLost as exc:
            raise CardLost(
                f"the token left the field during WRITE CONFIG; token {info.serial}'s clock and "
                "settings may or may not have changed"
                + (" and its seed may be erased" if model.restricted_sync else ""),
                "Place the token again, check it with `tokenstation info`, and repeat the "
                "operation"
                + (" as a burn, with the seed in hand." if model.restricted_sync else "."),
            ) from exc
        if seed is not None and (not self._seed_written or model.restricted_sync):
            try:
                self._exchange("WRITE SEED", commands.write_seed(key, seed), redact=True)
            except CardLost as exc:
                raise CardLost(
                    f"the token left the field during WRITE SEED; the seed "
                    f"{seed.fingerprint} is not known to be on token {info.serial}"
                    + (" and its previous seed is erased" if model.restricted_sync else ""),
                    "Place the token again and burn it again.",
                ) from exc
            self._seed_written = True
        return written, plan.prediction

    def _verify_clock(self, info: PublicInfo) -> TimedInfo:
        """Read the clock back: the same token, within whole-second reach of the host."""
        back = self.read_info()
        if back.info.serial != info.serial:
            raise VerificationFailed(
                f"a different token ({back.info.serial}) answered after writing {info.serial}"
            )
        error = back.info.token_time - back.midpoint
        if abs(error) > CLOCK_VERIFY_TOLERANCE_S:
            raise VerificationFailed(
                f"token {info.serial} reads {back.info.token_time} after the clock write, "
                f"{error:+.1f} s from the host"
            )
        return back

    def _phase_keeping_config_write(
        self, key: bytes, settings: TokenSettings, drift_s: float
    ) -> int:
        """Write the whole second that leaves a phase-keeping clock closest to the host.

        Such a clock keeps ticking on its old sub-second boundaries, so only whole
        seconds can be changed: ``drift_s`` becomes ``drift_s - round(drift_s)``, at most
        half a second. The write is timed to reach the token half-way between two of
        its ticks, so which second it lands in is never in doubt.
        """
        latency = self.stats.one_way_latency_s
        shift = -math.floor(drift_s + 0.5)
        earliest = self._clock.time() + latency + 0.005
        arrival = earliest + (0.5 - (earliest + drift_s)) % 1.0
        value = round(arrival + drift_s - 0.5) + shift
        self._clock.sleep(arrival - latency - self._clock.time())
        self._exchange("WRITE CONFIG", commands.write_config(key, settings, value))
        return value


@dataclass(frozen=True)
class _Prediction:
    """The drift a write should leave under each clock kind (None: cannot be predicted)."""

    resetting: tuple[float, ...]
    keeping: tuple[float, ...] | None

    def classify(self, measured: float, known: ClockKind) -> ClockKind:
        """The kind whose prediction alone fits ``measured``; ``known`` when none or both do."""
        reset_err = min(abs(measured - p) for p in self.resetting)
        if self.keeping is None:
            # Only "it reset" is predicted: a residual far from it means the phase was kept.
            return ClockKind.PHASE_KEEPING if reset_err > 3 * KIND_MATCH_S else known
        keep_err = min(abs(measured - p) for p in self.keeping)
        reset_fits, keep_fits = reset_err <= KIND_MATCH_S, keep_err <= KIND_MATCH_S
        if keep_fits and not reset_fits:
            return ClockKind.PHASE_KEEPING
        if reset_fits and not keep_fits:
            return ClockKind.PHASE_RESETTING
        return known


@dataclass(frozen=True)
class _WritePlan:
    """How to time the next clock write, and what it should leave behind."""

    keep_phase_of: float | None  # the drift to correct by whole seconds; None: timed write
    prediction: _Prediction

    @classmethod
    def for_kind(cls, kind: ClockKind, drift: DriftEstimate | None) -> _WritePlan:
        """A phase-keeping clock with a known drift gets whole seconds; others a timed write."""
        d = drift.drift_s if drift is not None and drift.method == "rollover" else None
        if kind is ClockKind.PHASE_KEEPING and d is not None:
            corrected = d - math.floor(d + 0.5)
            # A resetting clock would instead start the written second mid-phase: -0.5 s.
            return cls(d, _Prediction((corrected - 0.5,), (corrected,)))
        # Timed to start the host's second: a resetting clock lands on 0; a keeping one
        # keeps its old phase, frac(d) (or frac(d) - 1 when the arrival straddles a tick).
        frac = None if d is None else d - math.floor(d)
        return cls(None, _Prediction((0.0,), None if frac is None else (frac, frac - 1.0)))


def _check_serial(info: PublicInfo, expect_serial: str | None) -> None:
    if expect_serial is not None and info.serial != expect_serial:
        raise RefusedByPolicy(
            f"the token on the reader is {info.serial}, not {expect_serial}; nothing was written",
            "Place the intended token and try again.",
        )


def single_read_estimate(read: TimedInfo) -> DriftEstimate:
    """Drift from one read: the token's second began somewhere in the last second."""
    lo = read.info.token_time - read.received
    hi = read.info.token_time + 1 - read.sent
    return DriftEstimate((lo + hi) / 2, (hi - lo) / 2, 1, "single-read")
