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
from typing import Protocol

from . import commands
from .apdu import Response
from .commands import ChallengeForm, PublicInfo
from .crypto import CHALLENGE_LENGTH, check_seed
from .errors import (
    AuthenticationRefused,
    CardLost,
    MalformedResponse,
    RefusedByPolicy,
    RestrictedSync,
    TransportError,
    UnknownModel,
    VerificationFailed,
    error_for,
)
from .models import Model, ModelTable
from .secret import Secret
from .settings import TokenSettings

log = logging.getLogger(__name__)

#: Largest |token - host| accepted right after a clock write (whole-second reads).
CLOCK_VERIFY_TOLERANCE_S = 1.5


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
        if self.residual is not None:
            out["drift_s"] = round(self.residual.drift_s, 1)
            out["drift_uncertainty_s"] = round(self.residual.uncertainty_s, 3)
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
        self.stats = SessionStats()

    # -- the exchange ------------------------------------------------------------------

    def _exchange(self, name: str, apdu: bytes, *, redact: bool = False) -> bytes:
        """Send one APDU; return its data or raise the typed error for its status word."""
        t0 = self._clock.time()
        try:
            raw = self._conn.transmit(apdu, redact=redact)
        except TransportError as exc:
            raise CardLost(f"the token stopped answering during {name}: {exc.message}") from exc
        self.stats.apdus += 1
        self.stats.last_rtt_s.append(self._clock.time() - t0)
        resp = Response.decode(raw)
        if not resp.ok:
            raise error_for(name, resp.sw)
        return resp.data

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
        on_first: Callable[[TimedInfo, Model], None] | None = None,
    ) -> Identification:
        """Serial, model, token and host time, and the drift between them.

        ``on_first`` is called with the first reading and the model before the precise
        measurement starts (the daemon announces the token from it at once).
        """
        first = self.read_info()
        model = self._models.lookup(first.info.serial)
        if on_first is not None:
            on_first(first, model)
        drift = self.measure_drift(first, precise=precise)
        return Identification(
            serial=first.info.serial,
            model=model,
            token_time=first.info.token_time,
            host_time=first.midpoint,
            drift=drift,
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
        if self._auth_state == "refused":
            raise RefusedByPolicy(
                "authentication was already refused in this session and is never retried",
                AuthenticationRefused.next_step,
            )
        if self._auth_state == "ok":
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
    ) -> WriteResult:
        """Set the token's clock to the host's, rewriting ``settings`` (they cannot be read).

        Refused on restricted-sync models unless ``seed`` is given: the clock write
        erases the seed there, so it is re-burned in the same card session. With
        ``expect_serial``, refused before authenticating if another token answers.
        """
        if seed is not None:
            check_seed(seed)
        info = self.read_info().info
        _check_serial(info, expect_serial)
        model = self._writable_model(info)
        if model.restricted_sync and seed is None:
            raise RestrictedSync(
                f"{model.name} token {info.serial} erases its seed when its clock is set"
            )
        return self._write(model, info, settings, seed, measure_after=measure_after)

    def burn(
        self,
        seed: Secret,
        settings: TokenSettings,
        *,
        measure_after: bool = False,
        expect_serial: str | None = None,
    ) -> WriteResult:
        """Program ``seed`` with ``settings`` and the host's time, then verify the clock."""
        check_seed(seed)
        info = self.read_info().info
        _check_serial(info, expect_serial)
        model = self._writable_model(info)
        return self._write(model, info, settings, seed, measure_after=measure_after)

    def _write(
        self,
        model: Model,
        info: PublicInfo,
        settings: TokenSettings,
        seed: Secret | None,
        *,
        measure_after: bool,
    ) -> WriteResult:
        if settings.hmac not in model.algorithms or settings.period not in model.periods:
            raise RefusedByPolicy(f"{model.name} cannot hold {settings.as_dict()}")
        self.authenticate(model)
        key = model.family.key
        assert key is not None  # authenticate() refused otherwise
        try:
            written = self._timed_config_write(key, settings)
        except CardLost as exc:
            raise CardLost(
                f"the token left the field during WRITE CONFIG; token {info.serial}'s clock and "
                "settings may or may not have changed"
                + (" and its seed may be erased" if model.restricted_sync else ""),
                "Place the token again, check it with `tokenstation info`, and repeat the "
                "operation"
                + (" as a burn, with the seed in hand." if model.restricted_sync else "."),
            ) from exc
        if seed is not None:
            try:
                self._exchange("WRITE SEED", commands.write_seed(key, seed), redact=True)
            except CardLost as exc:
                raise CardLost(
                    f"the token left the field during WRITE SEED; the seed "
                    f"{seed.fingerprint} is not known to be on token {info.serial}"
                    + (" and its previous seed is erased" if model.restricted_sync else ""),
                    "Place the token again and burn it again.",
                ) from exc
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
        residual = self.measure_drift(back) if measure_after else None
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
        )


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
