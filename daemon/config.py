"""The daemon's configuration: built-in defaults < TOML file < command-line flags.

Unknown keys and bad values are refused at start with the key and the reason, so a
typo never silently turns a safety setting off. See ``docs/config.example.toml``.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tokenstation.daemon.families.section import FamilySettings
from tokenstation.daemon.families.sections import FAMILY_SECTIONS
from tokenstation.daemon.intake.payload import MAX_JOBS_PER_FILE, MAX_TEXT_BYTES, Limits
from tokenstation.daemon.token.errors import InvalidInput
from tokenstation.daemon.token.models import Model, VendorFamily
from tokenstation.daemon.token.problem import Problem, ProblemKind
from tokenstation.daemon.token.settings import (
    DISPLAY_TIMEOUT_CODES,
    PERIODS,
    HmacAlgorithm,
    TokenSettings,
)

log = logging.getLogger(__name__)

BUS_NAMES = ("session", "system")
CLOCK_TRUST = ("timedated", "assume-synchronised")
MODES = ("attended", "station")
AFTER_INGEST = ("delete", "archive")


class ConfigError(Problem, ValueError):
    """A configuration file or flag that cannot be used; the message names key and reason."""

    kind = ProblemKind.INVALID


@dataclass(frozen=True)
class ReaderFilter:
    """Which readers to watch: ``watch`` and ``ignore`` hold case-insensitive substrings."""

    watch: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()

    def accepts(self, reader: str) -> bool:
        """True when ``reader`` is watched (empty ``watch`` means every reader).

        A Molto2's reader is watched like any other: the station recognises it by its
        name and never sends it the single-profile probe.
        """
        name = reader.lower()
        if any(s.lower() in name for s in self.ignore):
            return False
        return not self.watch or any(s.lower() in name for s in self.watch)


@dataclass(frozen=True)
class DefaultSettings:
    """Token settings to assume for tokens this station has not written itself.

    They are used for a clock sync only when ``confirmed`` is true: the operator says
    every token here was burned with them. A wrong guess would break the token's codes.
    """

    algorithm: HmacAlgorithm = HmacAlgorithm.SHA1
    period: int = 30
    display_timeout: int = 30
    confirmed: bool = False

    def settings(self) -> TokenSettings:
        """As token settings."""
        return TokenSettings(self.algorithm, self.period, self.display_timeout)


@dataclass(frozen=True)
class NotifyChoices:
    """Which events the tray turns into notifications."""

    token_presented: bool = True
    in_time: bool = True
    drift: bool = True
    sync_result: bool = True
    non_token_cards: bool = False
    errors: bool = True


@dataclass(frozen=True)
class DropConfig:
    """The watched folder."""

    folder: Path | None = None  # default: $XDG_DATA_HOME/tokenstation/drop
    polling: bool = False  # for SMB/NFS shares, which send no inotify events
    poll_interval_s: float = 2.0
    stability_s: float = 1.0  # size and mtime unchanged this long before a file is taken
    max_file_bytes: int = 20 * 1024 * 1024
    after: str = "delete"  # or "archive": keep taken files in <folder>/archive (0700)
    max_jobs_per_file: int = MAX_JOBS_PER_FILE  # a bigger batch is refused whole
    max_text_bytes: int = MAX_TEXT_BYTES  # .txt/.uri/.csv files
    owners: tuple[str, ...] = ()  # users besides the daemon's whose dropped files are read

    def owner_uids(self) -> tuple[int, ...]:
        """The user ids of ``owners`` (names no longer known are left out)."""
        import pwd

        uids = []
        for name in self.owners:
            try:
                uids.append(pwd.getpwnam(name).pw_uid)
            except KeyError:
                continue
        return tuple(uids)

    def limits(self) -> Limits:
        """What one dropped file may hold."""
        return Limits(max_jobs=self.max_jobs_per_file, max_text_bytes=self.max_text_bytes)


@dataclass(frozen=True)
class StoreConfig:
    """Where the registry, queue and provisioning log are kept (README "Several stations")."""

    url: str = ""  # "": this station's SQLite files; "postgresql://...": a shared database
    key_file: Path | None = None  # default: $XDG_CONFIG_HOME/tokenstation/store.key
    lease_s: float = 30.0  # a claim a dead station holds returns after this long

    @property
    def shared(self) -> bool:
        """True when the stores are in a shared PostgreSQL database."""
        return bool(self.url)


@dataclass(frozen=True)
class PrivacyIdeaConfig:
    """``[handover.privacyidea]``: each generated seed is enrolled there after its burn."""

    url: str = ""  # "": no push; https://..., or http:// to a loopback address only
    api_token_file: Path | None = None  # an admin token (0600), sent as PI-Authorization
    realm: str = ""  # assign the token to its upn in this realm
    ca_file: Path | None = None  # the server's CA (default: the system's)


@dataclass(frozen=True)
class HandoverConfig:
    """Seeds made here, after their burn (docs/handover.md)."""

    keep_days: int = 7  # an exported seed is erased this long after its export
    privacyidea: PrivacyIdeaConfig = PrivacyIdeaConfig()


@dataclass(frozen=True)
class Config:
    """Everything the daemon reads at start."""

    bus: str = "session"
    state_dir: Path | None = None
    readers: ReaderFilter = ReaderFilter()
    drift_threshold_s: float = 2.0
    auto_sync: bool = False
    auto_sync_max_drift_s: float = 600.0
    clock_trust: str = "timedated"
    token_defaults: DefaultSettings = DefaultSettings()
    vendors: tuple[Model, ...] = ()
    notify: NotifyChoices = NotifyChoices()
    mode: str = "attended"  # "station": burn without asking, onto safe tokens only
    drop: DropConfig = DropConfig()
    #: Each token family's own section as read (``families.sections``), by name then key.
    family_settings: FamilySettings = field(default_factory=dict, repr=False)
    store: StoreConfig = StoreConfig()
    station_name: str = ""  # default: the host name
    handover: HandoverConfig = HandoverConfig()
    source: str = "built-in defaults"

    @property
    def station(self) -> str:
        """This station's name, recorded on every operation and claim."""
        return self.station_name or socket.gethostname()

    def with_flags(self, **flags: Any) -> Config:
        """Command-line flags over the file; a None flag leaves the value as it is."""
        given = {k: v for k, v in flags.items() if v is not None}
        if not given:
            return self
        if "store_url" in given:
            given["store"] = replace(self.store, url=_store_url("--store", given.pop("store_url")))
        cfg = replace(self, **given)
        _check_ranges(cfg, "command line")
        return cfg

    def describe(self) -> dict[str, object]:
        """The effective settings as plain values (no keys)."""
        return {
            "source": self.source,
            "bus": self.bus,
            "readers_watch": list(self.readers.watch),
            "readers_ignore": list(self.readers.ignore),
            "drift_threshold_s": self.drift_threshold_s,
            "auto_sync": self.auto_sync,
            "auto_sync_max_drift_s": self.auto_sync_max_drift_s,
            "clock_trust": self.clock_trust,
            "token_defaults_confirmed": self.token_defaults.confirmed,
            "vendors": [f"{m.prefix} {m.name}" for m in self.vendors],
            "mode": self.mode,
            "drop_polling": self.drop.polling,
            "station": self.station,
            "store": "postgresql" if self.store.shared else "sqlite",
        }


# -- reading a file ------------------------------------------------------------------------


Checker = Callable[[str, Any], Any]


def _bool(key: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise ConfigError(f"{key}: must be true or false, got {v!r}")
    return v


def _seconds(key: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
        raise ConfigError(f"{key}: must be a positive number of seconds, got {v!r}")
    return float(v)


def _choice(options: tuple[str, ...]) -> Checker:
    def check(key: str, v: Any) -> str:
        if v not in options:
            raise ConfigError(f"{key}: must be one of {', '.join(options)}, got {v!r}")
        return str(v)

    return check


def _strings(key: str, v: Any) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(s, str) and s for s in v):
        raise ConfigError(f"{key}: must be a list of non-empty strings, got {v!r}")
    return tuple(v)


def _users(key: str, v: Any) -> tuple[str, ...]:
    import pwd

    names = _strings(key, v)
    for name in names:
        try:
            pwd.getpwnam(name)
        except KeyError:
            raise ConfigError(f"{key}: there is no user named {name!r} on this system") from None
    return names


def _path(key: str, v: Any) -> Path:
    if not isinstance(v, str) or not v:
        raise ConfigError(f"{key}: must be a path, got {v!r}")
    return Path(os.path.expanduser(v))


def _algorithm(key: str, v: Any) -> HmacAlgorithm:
    if not isinstance(v, str) or v.strip().upper().replace("-", "") not in ("SHA1", "SHA256"):
        raise ConfigError(f"{key}: must be sha1 or sha256, got {v!r}")
    return HmacAlgorithm.parse(v)


def _int_choice(options: tuple[int, ...]) -> Checker:
    def check(key: str, v: Any) -> int:
        if isinstance(v, bool) or v not in options:
            raise ConfigError(f"{key}: must be one of {', '.join(map(str, options))}, got {v!r}")
        return int(v)

    return check


def _family_key(read: Callable[[Any], Any]) -> Checker:
    """A family's reader of one key (``families.section``) as a checker: its refusal,
    InvalidInput or ValueError, as the key's ConfigError."""

    def check(key: str, v: Any) -> Any:
        try:
            return read(v)
        except InvalidInput as exc:
            raise ConfigError(f"{key}: {exc.message}") from None
        except ValueError as exc:
            raise ConfigError(f"{key}: {exc}") from None

    return check


def _bytes(key: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ConfigError(f"{key}: must be a positive number of bytes, got {v!r}")
    return v


def _count(key: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1_000_000:
        raise ConfigError(f"{key}: must be a whole number from 1 to 1000000, got {v!r}")
    return v


def _store_url(key: str, v: Any) -> str:
    """A PostgreSQL URL that libpq can read (checked here, so a typo is bad input, not an
    unreachable server); never quoted back (it may hold a password)."""
    from urllib.parse import urlsplit

    if not isinstance(v, str) or not v.startswith(("postgresql:", "postgres:")):
        raise ConfigError(
            f"{key}: must be a PostgreSQL connection URL (postgresql://host/dbname; "
            "leave it out for this station's own SQLite files)"
        )
    why = ""
    if any(c.isspace() or not c.isprintable() for c in v):
        why = "it holds a space or a control character"
    else:
        try:
            _port = urlsplit(v).port  # a port that is no number raises
        except ValueError:
            why = "its host or port cannot be read"
    if why:
        raise ConfigError(
            f"{key}: the PostgreSQL URL is malformed ({why}): write it as "
            "postgresql://user@host:port/dbname, with any special character percent-encoded "
            "(%20 for a space, %40 for @)"
        )
    return v


def _station_name(key: str, v: Any) -> str:
    """Any printable name (spaces inside are fine); never a control character (it would
    garble the log lines, the tray and the other stations' messages naming it)."""
    if isinstance(v, str) and not v.isprintable():
        raise ConfigError(
            f"{key}: must not hold control characters (a tab, a new line, ...), got {v!r}: "
            "give the station a name of printable characters"
        )
    if not isinstance(v, str) or not v.strip() or len(v) > 64:
        raise ConfigError(f"{key}: must be a short printable name (1 to 64 characters), got {v!r}")
    return v.strip()


def _identity_url(key: str, v: Any) -> str:
    from urllib.parse import urlsplit

    loopback = ("127.0.0.1", "::1", "localhost")
    parts = urlsplit(v) if isinstance(v, str) else None
    if parts is None or not parts.hostname or parts.scheme not in ("https", "http"):
        raise ConfigError(f"{key}: must be an https:// URL of the server, got {v!r}")
    if parts.scheme == "http" and parts.hostname not in loopback:
        raise ConfigError(
            f"{key}: plain http:// only to a loopback address (tests); use https:// for "
            f"{parts.hostname}"
        )
    if parts.username or parts.password:
        raise ConfigError(f"{key}: no user or password in the URL; give api_token_file")
    return str(v).rstrip("/")


def _realm(key: str, v: Any) -> str:
    if not isinstance(v, str) or not v or len(v) > 64 or not v.isprintable():
        raise ConfigError(f"{key}: must be a realm name of 1 to 64 characters")
    return v


_TOP: dict[str, Checker] = {
    "bus": _choice(BUS_NAMES),
    "state_dir": _path,
    "mode": _choice(MODES),
}
_SECTIONS: dict[str, dict[str, Checker]] = {
    "readers": {"watch": _strings, "ignore": _strings},
    "drift": {"threshold": _seconds},
    "sync": {"auto": _bool, "auto_max_drift": _seconds},
    "clock": {"trust": _choice(CLOCK_TRUST)},
    "token_defaults": {
        "algorithm": _algorithm,
        "period": _int_choice(PERIODS),
        "display_timeout": _int_choice(tuple(DISPLAY_TIMEOUT_CODES)),
        "confirmed": _bool,
    },
    "notify": {name: _bool for name in NotifyChoices.__dataclass_fields__},
    "drop": {
        "folder": _path,
        "polling": _bool,
        "poll_interval": _seconds,
        "stability_delay": _seconds,
        "max_file_size": _bytes,
        "after": _choice(AFTER_INGEST),
        "max_jobs_per_file": _count,
        "max_text_size": _bytes,
        "owners": _users,
    },
    "store": {"url": _store_url, "key_file": _path, "lease": _seconds},
    "station": {"name": _station_name},
    "handover": {"keep_days": _count, "privacyidea": lambda key, v: v},  # checked below
    "handover.privacyidea": {
        "url": _identity_url,
        "api_token_file": _path,
        "realm": _realm,
        "ca_file": _path,
    },
}
_SECTIONS.update(
    {f.name: {k: _family_key(r) for k, r in f.readers.items()} for f in FAMILY_SECTIONS}
)
_DROP_FIELDS = {
    "folder": "folder",
    "polling": "polling",
    "poll_interval": "poll_interval_s",
    "stability_delay": "stability_s",
    "max_file_size": "max_file_bytes",
    "after": "after",
    "max_jobs_per_file": "max_jobs_per_file",
    "max_text_size": "max_text_bytes",
    "owners": "owners",
}


def _handover(data: Mapping[str, Any]) -> HandoverConfig:
    section = _section(data, "handover")
    raw = section.get("privacyidea", {})
    if not isinstance(raw, dict):
        raise ConfigError("[handover.privacyidea]: must be a table")
    pi = _section({"handover.privacyidea": raw}, "handover.privacyidea")
    if pi and ("url" not in pi or "api_token_file" not in pi):
        raise ConfigError("[handover.privacyidea]: give both url and api_token_file")
    return HandoverConfig(
        keep_days=section.get("keep_days", HandoverConfig.keep_days),
        privacyidea=PrivacyIdeaConfig(**pi),
    )


def _section(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    raw = data.get(name, {})
    if not isinstance(raw, dict):
        raise ConfigError(f"[{name}]: must be a table")
    checkers = _SECTIONS[name]
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in checkers:
            known = ", ".join(sorted(checkers))
            raise ConfigError(f"[{name}] {key}: unknown key (known: {known})")
        out[key] = checkers[key](f"[{name}] {key}", value)
    return out


def _vendor(i: int, raw: Any) -> Model:
    where = f"[[vendor]] #{i + 1}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table")
    known = {"prefix", "name", "family", "key", "restricted_sync"}
    for key in raw:
        if key not in known:
            raise ConfigError(f"{where} {key}: unknown key (known: {', '.join(sorted(known))})")
    prefix = raw.get("prefix")
    if not isinstance(prefix, str) or not prefix.isdigit():
        raise ConfigError(f"{where} prefix: must be the serial's leading digits, got {prefix!r}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where} name: the model name is required")
    if "restricted_sync" not in raw:
        raise ConfigError(
            f"{where} restricted_sync: required (true when a clock write erases the seed); "
            "if unsure, say true"
        )
    restricted = _bool(f"{where} restricted_sync", raw["restricted_sync"])
    sm4_key: bytes | None = None
    if "key" in raw:
        text = raw["key"]
        try:
            sm4_key = bytes.fromhex(text) if isinstance(text, str) else None
        except ValueError:
            sm4_key = None
        if sm4_key is None or len(sm4_key) != 16:
            raise ConfigError(f"{where} key: must be 32 hex digits (a 16-byte SM4 key)")
    family = raw.get("family", f"{name} (configured)")
    if not isinstance(family, str):
        raise ConfigError(f"{where} family: must be a string")
    return Model(prefix, name, VendorFamily(family, sm4_key), restricted_sync=restricted)


def parse(data: Mapping[str, Any], source: str = "config") -> Config:
    """Build a Config from parsed TOML, refusing unknown keys and bad values."""
    for key in data:
        if key not in _TOP and key not in _SECTIONS and key != "vendor":
            known = ", ".join(sorted([*_TOP, *(f"[{s}]" for s in _SECTIONS), "[[vendor]]"]))
            raise ConfigError(f"{key}: unknown key (known: {known})")
    top = {k: _TOP[k](k, v) for k, v in data.items() if k in _TOP}
    readers = _section(data, "readers")
    drift = _section(data, "drift")
    sync = _section(data, "sync")
    clock = _section(data, "clock")
    defaults = _section(data, "token_defaults")
    notify = _section(data, "notify")
    drop = {_DROP_FIELDS[k]: v for k, v in _section(data, "drop").items()}
    families = {f.name: _section(data, f.name) for f in FAMILY_SECTIONS}
    store = _section(data, "store")
    station = _section(data, "station")
    handover = _handover(data)
    vendors_raw = data.get("vendor", [])
    if not isinstance(vendors_raw, list):
        raise ConfigError("vendor: write vendor families as [[vendor]] tables")
    vendors = tuple(_vendor(i, v) for i, v in enumerate(vendors_raw))
    cfg = Config(
        bus=top.get("bus", "session"),
        state_dir=top.get("state_dir"),
        readers=ReaderFilter(**readers),
        drift_threshold_s=drift.get("threshold", 2.0),
        auto_sync=sync.get("auto", False),
        auto_sync_max_drift_s=sync.get("auto_max_drift", 600.0),
        clock_trust=clock.get("trust", "timedated"),
        token_defaults=DefaultSettings(**defaults),
        vendors=vendors,
        notify=NotifyChoices(**notify),
        mode=top.get("mode", "attended"),
        drop=DropConfig(**drop),
        family_settings={name: values for name, values in families.items() if values},
        store=StoreConfig(
            url=store.get("url", ""),
            key_file=store.get("key_file"),
            lease_s=store.get("lease", StoreConfig.lease_s),
        ),
        station_name=station.get("name", ""),
        handover=handover,
        source=source,
    )
    _check_ranges(cfg, source)
    return cfg


def _check_ranges(cfg: Config, source: str) -> None:
    if cfg.bus not in BUS_NAMES:
        raise ConfigError(f"{source}: bus must be session or system, got {cfg.bus!r}")
    if cfg.drift_threshold_s <= 0:
        raise ConfigError(f"{source}: the drift threshold must be positive")
    if cfg.auto_sync_max_drift_s < cfg.drift_threshold_s:
        raise ConfigError(
            f"{source}: [sync] auto_max_drift ({cfg.auto_sync_max_drift_s:g} s) is below the "
            f"drift threshold ({cfg.drift_threshold_s:g} s), so auto-sync could never act"
        )


def load(path: Path | None, *, required: bool) -> Config:
    """Read ``path`` (or the XDG default when None). A missing default file is no error."""
    from tokenstation.daemon import xdg

    target = path if path is not None else xdg.config_file()
    try:
        raw = target.read_bytes()
    except FileNotFoundError:
        if required:
            raise ConfigError(f"{target}: no such file") from None
        return Config()
    except OSError as exc:
        raise ConfigError(f"{target}: cannot be read ({exc.strerror})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{target}: not valid TOML ({exc})") from None
    cfg = parse(data, str(target))
    _warn_if_exposed(cfg, target)
    return cfg


#: Configuration files warned about in this process (a command may read one twice).
_WARNED: set[str] = set()


def _warn_if_exposed(cfg: Config, target: Path) -> None:
    """A configuration holding secrets (vendor keys, the database password) that others
    may read: said once, at start, with what to do."""
    held = []
    if any(m.family.key for m in cfg.vendors) or any(f.holds_secret(cfg) for f in FAMILY_SECTIONS):
        held.append("vendor keys")
    if url_password(cfg.store.url):
        held.append("the database password")
    if not held or str(target) in _WARNED:
        return
    st = target.stat()
    readers = readable_by(st)
    if readers:
        _WARNED.add(str(target))
        log.warning(
            "%s holds %s and is readable by %s (mode %o): `chmod 600` it (a station's "
            "own: root:tokenstation 0640, as the package installs it)",
            target,
            " and ".join(held),
            readers,
            stat.S_IMODE(st.st_mode),
        )


def readable_by(st: os.stat_result) -> str:
    """Who besides the owner may read a file: "everyone", "the group NAME", or ""
    (the running user's own primary group reading is none: a station's daemon reads
    its configuration as the group tokenstation, root:tokenstation 0640)."""
    if st.st_mode & stat.S_IROTH:
        return "everyone"
    if st.st_mode & stat.S_IRGRP and st.st_gid != os.getegid():
        import grp

        try:
            name = grp.getgrgid(st.st_gid).gr_name
        except KeyError:
            name = str(st.st_gid)
        return f"the group {name}"
    return ""


def url_password(url: str) -> bool:
    """True when a database URL holds a password (``user:password@`` or ``password=``)."""
    from urllib.parse import parse_qs, urlsplit

    if not url:
        return False
    try:
        parts = urlsplit(url)
        return bool(parts.password) or "password" in parse_qs(parts.query)
    except ValueError:
        return "password=" in url
