"""Molto2 operations over the same abstract Connection the single-profile TokenSession uses.

Safety rules (token-protocol.md sections 5.2 and 6.1):
- recognised by the reader's product name on real hardware; only behind vsmartcard's
  virtual reader (tests, demos) by one public-data read, never in a loop;
- one authentication per session with the configured customer key, never retried;
- a seed is never written over an existing one: the profile is read first and a
  profile holding a seed is refused (delete is a separate, explicit action);
- every write is verified by reading the profile's public data back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from tokenstation.daemon.token import molto2 as m
from tokenstation.daemon.token.apdu import Response
from tokenstation.daemon.token.commands import PublicInfo
from tokenstation.daemon.token.commands import authenticate as auth_apdu
from tokenstation.daemon.token.crypto import CHALLENGE_LENGTH, check_seed
from tokenstation.daemon.token.errors import (
    AuthenticationRefused,
    CardLost,
    MalformedResponse,
    RefusedByPolicy,
    StatusWordError,
    TransportError,
    VerificationFailed,
)
from tokenstation.daemon.token.models import Model, VendorFamily
from tokenstation.daemon.token.secret import Secret
from tokenstation.daemon.token.session import (
    Connection,
    DriftEstimate,
    HostClock,
    SessionStats,
    SystemClock,
    TimedInfo,
    authentication_due,
    exchange,
    single_read_estimate,
)

log = logging.getLogger(__name__)

#: vsmartcard's virtual reader, where a simulated Molto2 may sit (tests and demos).
VIRTUAL_READER_WORD = "virtual pcd"
#: A profile clock further than this from the host is taken as not a clock at all.
PLAUSIBLE_CLOCK_S = 10 * 365 * 86400
#: Profiles of the first Molto2 (0..49); the Molto2v2 has 100.
FIRST_MOLTO2_PROFILES = 50


def molto2_model(profiles: int, customer_key: bytes = m.DEFAULT_CUSTOMER_KEY) -> Model:
    """The daemon's model entry for a recognised Molto2 (Molto2v2 with 100 profiles).

    Its key is the SM4 key derived from the configured customer key; a Molto2 is never
    written through the single-profile session, and its clock writes keep every seed.
    """
    family = VendorFamily("token2-molto2", m.derive_key(customer_key))
    name = "Molto2v2" if profiles == m.PROFILES else "Molto2"
    return Model(prefix="", name=name, family=family, restricted_sync=False)


class ProfileOccupied(RefusedByPolicy):
    """The profile already holds a seed: tokenstation never writes over one."""

    next_step = (
        "Choose a free profile (--profile next), or delete this profile's seed first with "
        "`tokenstation delete --profile N` if it is really no longer needed."
    )


class NoFreeProfile(RefusedByPolicy):
    """Every profile holds a seed."""

    next_step = "Delete a profile that is no longer needed, or use another token."


class ClockNotSet(VerificationFailed):
    """A profile's clock reads back off after a clock write the device acknowledged.

    ``read_back``: the profile as read after the write; ``drift_after_s``: its clock's
    figure then (None: no plausible clock); ``synced``: the profiles a sync had set
    before this one (their clocks did take)."""

    def __init__(
        self,
        message: str,
        next_step: str,
        *,
        read_back: m.ProfileInfo,
        drift_after_s: float | None,
        synced: tuple[ProfileSync, ...] = (),
    ) -> None:
        super().__init__(message, next_step)
        self.read_back = read_back
        self.drift_after_s = drift_after_s
        self.synced = synced


def clock_took(drift_after_s: float | None) -> bool:
    """Whether a profile's clock, read back after a write, shows the time written."""
    return drift_after_s is not None and abs(drift_after_s) <= CLOCK_TOOK_S


def is_virtual_reader(name: str) -> bool:
    """True for vsmartcard's vpcd reader (where only simulated devices sit)."""
    return VIRTUAL_READER_WORD in name.lower()


def recognise(reader: str, connection: Connection) -> bool:
    """Is the device on ``reader`` a Molto2?

    By name on real hardware, without sending anything. Behind vpcd by one public-data
    read of profile 0, whose strict `95 1F 70 1D` answer no single-profile token gives.
    Any other reader is not probed: an unknown command is never sent to a real token.
    """
    if m.is_molto2_reader(reader):
        return True
    if not is_virtual_reader(reader):
        return False
    try:
        resp = Response.decode(connection.transmit(m.read_profile(0)))
    except (TransportError, MalformedResponse):
        return False
    if not resp.ok:
        return False
    try:
        m.parse_profile(0, resp.data)
    except MalformedResponse:
        return False
    return True


@dataclass(frozen=True)
class ProfileWrite:
    """What a burn did to one profile, as read back."""

    serial: str
    profile: int
    title: str
    settings: m.ProfileSettings
    written_time: int
    host_time: float
    seed_fingerprint: str

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form (a fingerprint, never the seed)."""
        return {
            "serial": self.serial,
            "profile": self.profile,
            "title": self.title,
            "settings": self.settings.as_dict(),
            "written_time": self.written_time,
            "secret_fingerprint": self.seed_fingerprint,
        }


@dataclass(frozen=True)
class ProfileSync:
    """One profile's clock before and after a sync (None when it cannot be read)."""

    profile: int
    title: str
    settings: m.ProfileSettings | None
    drift_before_s: float | None
    drift_after_s: float | None

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form."""
        return {
            "profile": self.profile,
            "title": self.title,
            "settings": self.settings.as_dict() if self.settings else None,
            "drift_before_s": _round(self.drift_before_s),
            "drift_after_s": _round(self.drift_after_s),
        }


#: A Molto2's clocks count whole seconds: one read places a clock within about 1 s.
CLOCK_PRECISION_S = 1.0
#: How that precision is said, once, wherever a Molto2's drift is shown.
PRECISION_WORDS = f"whole-second clock, ±{CLOCK_PRECISION_S:.0f} s"
#: After a clock write a profile's clock reads within this of the host, or it did not take.
CLOCK_TOOK_S = 2.0


def whole_seconds(read: TimedInfo) -> float:
    """One clock read's drift as a Molto2 figure: whole seconds (the centre of the
    second it reported, rounded), the same for every view of one device."""
    return float(round(single_read_estimate(read).drift_s))


def molto2_drift(profiles: dict[int, float], device: TimedInfo | None = None) -> DriftEstimate:
    """The one drift figure of a Molto2: the largest of its seeded profiles' clocks (the
    device clock's when no profile holds a seed, or 0 when neither is known), in whole
    seconds, ±1 s. Every view (log, `profiles`, `sync`, `status`, the tray) shows this."""
    if profiles:
        worst = max(profiles.values(), key=abs)
        return DriftEstimate(worst, CLOCK_PRECISION_S, len(profiles), "profile-clock")
    drift = whole_seconds(device) if device is not None else 0.0
    return DriftEstimate(drift, CLOCK_PRECISION_S, 1, "device-clock")


def molto2_drift_words(drift_s: float | None, *, precision: bool = True) -> str:
    """A Molto2 drift figure in words: '7 s fast (whole-second clock, ±1 s)', 'in time
    (...)' within the clock's precision (a figure of 1 s may be 0); without
    ``precision`` just '7 s fast' (where the precision is said once elsewhere)."""
    if drift_s is None:
        words = "unknown"
    else:
        shown = round(drift_s)
        words = (
            "in time"
            if abs(shown) <= CLOCK_PRECISION_S
            else f"{abs(shown)} s {'fast' if shown > 0 else 'slow'}"
        )
    return f"{words} ({PRECISION_WORDS})" if precision else words


def profile_clock_drift(drifts: dict[int, float]) -> DriftEstimate | None:
    """The Molto2 figure over the seeded profiles' clocks, or None when none has one."""
    return molto2_drift(drifts) if drifts else None


def _round(value: float | None) -> float | None:
    return None if value is None else float(round(value))


class Molto2Session:
    """Operations on the Molto2 on one connection."""

    def __init__(
        self,
        connection: Connection,
        customer_key: bytes = m.DEFAULT_CUSTOMER_KEY,
        clock: HostClock | None = None,
    ) -> None:
        self._conn = connection
        self._key = m.derive_key(customer_key)
        self._clock = clock if clock is not None else SystemClock()
        self._auth_state = "none"  # none | ok | refused
        self.stats = SessionStats()
        #: The profile a WRITE SEED was sent to in this session (None: none was sent).
        self.seed_sent_to: int | None = None

    # -- the exchange --------------------------------------------------------------------

    def _exchange(
        self, name: str, apdu: bytes, *, redact: bool = False, allowed: tuple[int, ...] = ()
    ) -> Response:
        return exchange(
            self._conn,
            self._clock,
            self.stats,
            name,
            apdu,
            device="Molto2",
            redact=redact,
            allowed=allowed,
        )

    # -- reading -------------------------------------------------------------------------

    def read_info(self) -> TimedInfo:
        """GET INFO (80 41 00 00 00): serial and the device clock, with host times around."""
        sent = self._clock.time()
        data = self._exchange("GET INFO", m.GET_INFO).data
        received = self._clock.time()
        return TimedInfo(m.parse_device_info(data), sent, received)

    def read_profile(self, profile: int) -> m.ProfileInfo:
        """One profile's public data (no authentication)."""
        resp = self._exchange(f"READ PROFILE {profile}", m.read_profile(profile))
        return m.parse_profile(profile, resp.data)

    def read_profiles(
        self, indices: Iterable[int] = range(m.PROFILES), drifts: dict[int, float] | None = None
    ) -> list[m.ProfileInfo]:
        """Public data of each profile in ``indices`` (stops at the first missing profile).

        With ``drifts``, each profile holding a seed gets its clock's whole-second drift
        there (profiles whose clock field is no plausible clock are left out).
        """
        out = []
        for i in indices:
            try:
                if drifts is None:
                    out.append(self.read_profile(i))
                    continue
                info, drift = self._timed_profile(i)
                out.append(info)
                if info.seed_present and drift is not None:
                    drifts[i] = drift
            except StatusWordError:
                if i == FIRST_MOLTO2_PROFILES:  # a first-generation Molto2 has 0..49
                    break
                raise
        return out

    # -- authentication ------------------------------------------------------------------

    def authenticate(self) -> None:
        """GET CHALLENGE + AUTHENTICATE, once; a refusal (63 NN) is final for this session."""
        if not authentication_due(self._auth_state):
            return
        challenge = self._exchange("GET CHALLENGE", m.GET_CHALLENGE).data
        if len(challenge) != CHALLENGE_LENGTH:
            raise MalformedResponse(f"challenge is {len(challenge)} bytes, expected 8")
        try:
            self._exchange("AUTHENTICATE", auth_apdu(self._key, challenge))
        except AuthenticationRefused as exc:
            self._auth_state = "refused"
            left = exc.sw & 0xFF if exc.sw >> 8 == 0x63 else None
            raise AuthenticationRefused(
                "AUTHENTICATE",
                exc.sw,
                (f"{left} attempts are left before the Molto2 locks. " if left is not None else "")
                + "Do not retry: check [molto2] customer_key in the configuration.",
            ) from None
        self._auth_state = "ok"

    # -- writing -------------------------------------------------------------------------

    def next_free(self, profiles: list[m.ProfileInfo] | None = None) -> int:
        """The lowest profile without a seed (read one by one up to it, without a listing)."""
        if profiles is not None:
            free = [p.index for p in profiles if not p.seed_present]
            if free:
                return free[0]
            raise NoFreeProfile("every profile of this Molto2 holds a seed")
        for i in range(m.PROFILES):
            try:
                if not self.read_profile(i).seed_present:
                    return i
            except StatusWordError:
                if i == FIRST_MOLTO2_PROFILES:
                    break
                raise
        raise NoFreeProfile("every profile of this Molto2 holds a seed")

    def burn(
        self,
        profile: int,
        seed: Secret,
        settings: m.ProfileSettings,
        title: str,
        *,
        expect_serial: str | None = None,
    ) -> ProfileWrite:
        """Seed, title and config (with the host's time) onto an empty profile; verified.

        Refused before authenticating when the profile holds a seed. The order is
        Token2's: seed, title, config.
        """
        check_seed(seed)
        m.check_profile(profile)
        m.title_bytes(title)
        info = self.read_info().info
        if expect_serial is not None and info.serial != expect_serial:
            raise RefusedByPolicy(
                f"the Molto2 on the reader is {info.serial}, not {expect_serial}; nothing "
                "was written",
                "Plug in the intended device and try again.",
            )
        before = self.read_profile(profile)
        if before.seed_present:
            raise ProfileOccupied(
                f"profile {profile} of Molto2 {info.serial} already holds a seed"
                + (f" ({before.title})" if before.title else "")
                + "; it was not touched"
            )
        self.authenticate()
        self.seed_sent_to = profile
        try:
            self._exchange(
                f"WRITE SEED {profile}", m.write_seed(self._key, profile, seed), redact=True
            )
        except CardLost as exc:
            raise CardLost(
                f"the Molto2 was pulled during WRITE SEED of profile {profile}; the seed "
                f"{seed.fingerprint} may or may not be on it",
                "Plug it in again and run `tokenstation profiles`: a profile holding a seed "
                "is never overwritten, so burn into the next free one.",
            ) from exc
        try:
            utc, host = self._title_and_config(profile, settings, title)
        except CardLost as exc:
            raise CardLost(
                f"the Molto2 was pulled after the seed {seed.fingerprint} was written to "
                f"profile {profile}; its title, settings and clock may not be",
                f"Plug it in again: `tokenstation profiles` shows profile {profile} holding a "
                "seed, which is never overwritten. Delete it and burn again, or burn into the "
                "next free profile.",
            ) from exc
        self._verify(info.serial, profile, settings, title)
        return ProfileWrite(info.serial, profile, title, settings, utc, host, seed.fingerprint)

    def _title_and_config(
        self, profile: int, settings: m.ProfileSettings, title: str
    ) -> tuple[int, float]:
        """WRITE TITLE then WRITE CONFIG with the host's time: (time written, host time)."""
        self._exchange(f"WRITE TITLE {profile}", m.write_title(self._key, profile, title))
        host = self._clock.time()
        utc = round(host + self.stats.one_way_latency_s)
        self._exchange(f"WRITE CONFIG {profile}", m.write_config(self._key, profile, settings, utc))
        return utc, host

    def finish(
        self,
        profile: int,
        settings: m.ProfileSettings,
        title: str,
        fingerprint: str,
        *,
        expect_serial: str,
    ) -> ProfileWrite:
        """Title and config onto a profile whose seed write was cut short but landed.

        For a burn interrupted after its WRITE SEED was sent: the caller has read the
        profile's seed-present flag (set: the seed is there, so it is never sent again).
        Refused before authenticating if the profile holds no seed after all.
        """
        m.title_bytes(title)
        info = self.read_info().info
        if info.serial != expect_serial:
            raise RefusedByPolicy(
                f"the Molto2 on the reader is {info.serial}, not {expect_serial}; nothing "
                "was written",
                "Plug in the intended device and try again.",
            )
        if not self.read_profile(profile).seed_present:
            raise RefusedByPolicy(
                f"profile {profile} of Molto2 {info.serial} holds no seed; nothing was written"
            )
        self.authenticate()
        utc, host = self._title_and_config(profile, settings, title)
        self._verify(info.serial, profile, settings, title)
        return ProfileWrite(info.serial, profile, title, settings, utc, host, fingerprint)

    def _verify(self, serial: str, profile: int, settings: m.ProfileSettings, title: str) -> None:
        """Read the profile back: seed present, title and settings as written, and its
        clock at the time written (else :class:`ClockNotSet`)."""
        after, drift = self._timed_profile(profile)
        problems = []
        if not after.seed_present:
            problems.append("no seed")
        if after.title != title:
            problems.append(f"title {after.title!r}")
        if (after.hmac, after.period, after.digits) != (
            settings.hmac,
            settings.period,
            settings.digits,
        ):
            problems.append(f"settings {after.as_dict()}")
        if problems:
            raise VerificationFailed(
                f"profile {profile} of Molto2 {serial} reads back "
                + ", ".join(problems)
                + " after the burn"
            )
        if not clock_took(drift):
            raise ClockNotSet(
                f"the seed, title and settings are on profile {profile} of Molto2 {serial}, "
                f"but its clock did not take the time written (the device acknowledged the "
                f"write): it reads {molto2_drift_words(drift)}, so its codes are wrong",
                f"Plug the Molto2 in again and run `tokenstation sync`; if its clock still "
                f"does not move, delete the profile (`tokenstation delete --profile "
                f"{profile}`) and burn the account onto another token.",
                read_back=after,
                drift_after_s=drift,
            )

    def delete(self, profile: int) -> bool:
        """Delete one profile's seed (80 E6; keeps the title). False when it was empty."""
        resp = self._exchange(
            f"DELETE SEED {profile}", m.delete_seed(profile), allowed=(m.SW_NOT_FOUND,)
        )
        if resp.ok and self.read_profile(profile).seed_present:
            raise VerificationFailed(f"profile {profile} still reports a seed after the delete")
        return resp.ok

    def _timed_profile(self, index: int) -> tuple[m.ProfileInfo, float | None]:
        """Read one profile; with it the drift of its clock (None when not a clock)."""
        sent = self._clock.time()
        info = self.read_profile(index)
        drift = whole_seconds(TimedInfo(PublicInfo("", info.time_a), sent, self._clock.time()))
        return info, drift if abs(drift) < PLAUSIBLE_CLOCK_S else None

    def sync(self, profiles: list[m.ProfileInfo] | None = None) -> list[ProfileSync]:
        """Set the clock of every profile holding a seed (time-only write), verified.

        The settings are read from each profile and checked unchanged afterwards; the
        time-only TLV rewrites nothing else, so no settings need to be known. Without
        ``profiles`` every profile is read once (and written only if it holds a seed).
        Drift is whole-second (the centre of the second the profile reports, so within
        0.5 s plus the round trip).
        """
        indices = (
            [p.index for p in profiles if p.seed_present]
            if profiles is not None
            else range(m.PROFILES)
        )
        out: list[ProfileSync] = []
        for index in indices:
            try:
                fresh, drift_before = self._timed_profile(index)
            except StatusWordError:
                if profiles is None and index == FIRST_MOLTO2_PROFILES:
                    break
                raise
            if not fresh.seed_present:
                continue
            self.authenticate()
            utc = round(self._clock.time() + self.stats.one_way_latency_s)
            self._exchange(f"SYNC PROFILE {index}", m.sync_time(self._key, index, utc))
            after, drift_after = self._timed_profile(index)
            if not after.seed_present or (after.algorithm, after.period, after.digits) != (
                fresh.algorithm,
                fresh.period,
                fresh.digits,
            ):
                raise VerificationFailed(f"profile {index} changed more than its clock in the sync")
            if not clock_took(drift_after):
                raise _not_synced(
                    index,
                    fresh.title,
                    before=drift_before,
                    after=drift_after,
                    read_back=after,
                    synced=out,
                )
            out.append(ProfileSync(index, fresh.title, fresh.settings(), drift_before, drift_after))
        return out

    def change_key(self, new_customer_key: bytes) -> bool:
        """Ask for a new customer key; True when the device waits for its button (90 60)."""
        self.authenticate()
        resp = self._exchange(
            "CHANGE KEY",
            m.change_key(self._key, new_customer_key),
            redact=True,
            allowed=(m.SW_AWAITING_BUTTON,),
        )
        return resp.sw == m.SW_AWAITING_BUTTON

    def factory_reset(self) -> bool:
        """Ask for a factory reset; True when the device waits for its button (90 60)."""
        resp = self._exchange("FACTORY RESET", m.FACTORY_RESET, allowed=(m.SW_AWAITING_BUTTON,))
        return resp.sw == m.SW_AWAITING_BUTTON


def _not_synced(
    index: int,
    title: str,
    *,
    before: float | None,
    after: float | None,
    read_back: m.ProfileInfo,
    synced: list[ProfileSync],
) -> ClockNotSet:
    """A sync whose clock write did not take on profile ``index``: what happened (and
    which profiles were set before it) and the next step. The sync stops there."""
    done = (
        "profiles " + ", ".join(str(r.profile) for r in synced) + " were set before it"
        if synced
        else "no profile's clock was set"
    )
    name = f" ({title})" if title else ""
    return ClockNotSet(
        f"the clock of profile {index}{name} did not take the time written (the device "
        f"acknowledged the write): it was {molto2_drift_words(before, precision=False)} and "
        f"reads {molto2_drift_words(after)} after it; {done}, and the sync stopped there",
        "Its seed and settings are unchanged. Plug the Molto2 in again and sync once more; "
        "if its clock still does not move, its codes stay off: move its accounts to "
        "another token.",
        read_back=read_back,
        drift_after_s=after,
        synced=tuple(synced),
    )
