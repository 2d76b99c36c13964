"""The daemon's pure parts: configuration, sync policy, drift rate, registry."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tokenstation.daemon.clocksync.policy import ClockTrust, KnownSettings, decide, known_settings
from tokenstation.daemon.config import Config, ConfigError, DefaultSettings, load, parse
from tokenstation.daemon.registry.drift import estimate_rate
from tokenstation.daemon.registry.store import DriftPoint, Operation, Store
from tokenstation.daemon.token.models import ModelTable
from tokenstation.daemon.token.settings import HmacAlgorithm, TokenSettings

TRUSTED = ClockTrust(True, "timedated", "synchronised")
UNTRUSTED = ClockTrust(False, "timedated", "not synchronised")
TABLE = ModelTable()
C302 = TABLE.lookup("86596320000001")
P2 = TABLE.lookup("86596220000001")
UNKNOWN = TABLE.lookup("12345678")
KNOWN = KnownSettings(TokenSettings(), "registry")


# -- configuration ----------------------------------------------------------------------


def test_an_empty_file_gives_the_safe_defaults() -> None:
    cfg = parse({})
    assert cfg.drift_threshold_s == 2.0
    assert cfg.auto_sync is False
    assert cfg.token_defaults.confirmed is False
    assert cfg.clock_trust == "timedated"


def test_a_full_file_is_read() -> None:
    cfg = parse(
        {
            "bus": "system",
            "readers": {"watch": ["OMNIKEY"], "ignore": ["Yubico"]},
            "drift": {"threshold": 5},
            "sync": {"auto": True, "auto_max_drift": 120},
            "token_defaults": {"algorithm": "SHA256", "period": 60, "confirmed": True},
            "vendor": [
                {"prefix": "7001", "name": "eSecuOTP-1A", "key": "00" * 16, "restricted_sync": True}
            ],
            "notify": {"in_time": False},
            "mode": "station",
            "drop": {"folder": "~/drop", "polling": True, "stability_delay": 2.5},
        }
    )
    assert cfg.mode == "station" and cfg.drop.polling and cfg.drop.stability_s == 2.5
    assert cfg.drop.folder == Path.home() / "drop"
    assert cfg.bus == "system" and cfg.drift_threshold_s == 5.0 and cfg.auto_sync
    assert cfg.token_defaults.settings() == TokenSettings(HmacAlgorithm.SHA256, 60, 30)
    assert cfg.readers.accepts("HID Global OMNIKEY 5427 CK [OMNIKEY 5427 CK] 00 00")
    assert not cfg.readers.accepts("Yubico YubiKey OTP+FIDO+CCID 00 00")
    assert not cfg.readers.accepts("Virtual PCD 00 00")
    model = ModelTable(cfg.vendors).lookup("70010000123")
    assert model.name == "eSecuOTP-1A" and model.programmable and model.restricted_sync
    assert "00" * 16 not in repr(cfg)  # the key never shows


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"drift": {"treshold": 3}}, "[drift] treshold: unknown key"),
        ({"autosync": True}, "autosync: unknown key"),
        ({"drift": {"threshold": -1}}, "[drift] threshold: must be a positive number"),
        ({"sync": {"auto": "yes"}}, "[sync] auto: must be true or false"),
        ({"token_defaults": {"period": 45}}, "[token_defaults] period: must be one of 30, 60"),
        ({"token_defaults": {"algorithm": "md5"}}, "must be sha1 or sha256"),
        ({"bus": "user"}, "bus: must be one of session, system"),
        ({"vendor": [{"prefix": "70", "name": "x"}]}, "restricted_sync: required"),
        (
            {"vendor": [{"prefix": "70", "name": "x", "restricted_sync": True, "key": "abc"}]},
            "key: must be 32 hex digits",
        ),
        ({"sync": {"auto_max_drift": 1}}, "auto_max_drift (1 s) is below the drift threshold"),
        ({"mode": "auto"}, "mode: must be one of attended, station"),
        ({"drop": {"after": "keep"}}, "[drop] after: must be one of delete, archive"),
        ({"drop": {"stability": 2}}, "[drop] stability: unknown key"),
        ({"drop": {"max_file_size": 0}}, "[drop] max_file_size: must be a positive number"),
        ({"drop": {"owners": "nobody"}}, "[drop] owners: must be a list of non-empty strings"),
        (
            {"drop": {"owners": ["nobody", "no-such-user-here"]}},
            "[drop] owners: there is no user named 'no-such-user-here' on this system",
        ),
        ({"station": {"name": "desk\n2"}}, "[station] name: must not hold control characters"),
    ],
)
def test_bad_configuration_is_refused_with_key_and_reason(
    data: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        parse(data)
    assert message in str(exc.value)


def test_drop_owners_are_user_names_read_as_their_ids() -> None:
    import pwd

    cfg = parse({"drop": {"owners": ["nobody"]}})
    assert cfg.drop.owners == ("nobody",)
    assert cfg.drop.owner_uids() == (pwd.getpwnam("nobody").pw_uid,)
    assert parse({}).drop.owner_uids() == ()


def test_a_station_name_may_have_spaces() -> None:
    assert parse({"station": {"name": " desk 2nd floor "}}).station == "desk 2nd floor"


def test_flags_override_the_file_and_are_checked(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[drift]\nthreshold = 4\n[sync]\nauto = true\n")
    cfg = load(f, required=True)
    assert cfg.drift_threshold_s == 4.0 and cfg.auto_sync
    cfg2 = cfg.with_flags(drift_threshold_s=1.5, auto_sync=False, bus=None)
    assert cfg2.drift_threshold_s == 1.5 and not cfg2.auto_sync and cfg2.bus == "session"
    with pytest.raises(ConfigError):
        cfg.with_flags(drift_threshold_s=-2.0)


def test_broken_or_missing_files(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[drift\nthreshold = 4\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(f, required=True)
    with pytest.raises(ConfigError, match="no such file"):
        load(tmp_path / "nope.toml", required=True)
    assert load(tmp_path / "nope.toml", required=False) == Config()


# -- policy ----------------------------------------------------------------------------


def test_within_the_threshold_is_in_time_and_no_sync_is_offered() -> None:
    d = decide(C302, 1.9, KNOWN, TRUSTED, Config())
    assert d.verdict == "in-time" and d.sync_safe and not d.sync_offered and not d.auto_sync


def test_beyond_the_threshold_on_a_safe_model_offers_one_click_sync() -> None:
    d = decide(C302, -37.4, KNOWN, TRUSTED, Config())
    assert d.verdict == "drift" and d.sync_offered and not d.needs_confirmation
    assert not d.auto_sync  # auto-sync is off by default


def test_restricted_models_are_never_offered_a_sync() -> None:
    d = decide(P2, 37.4, KNOWN, TRUSTED, Config(auto_sync=True))
    assert not d.sync_safe and not d.sync_offered and not d.auto_sync
    assert "erases its seed" in d.reason and "re-burn" in d.reason


def test_unknown_settings_block_the_sync() -> None:
    d = decide(C302, 37.4, None, TRUSTED, Config(auto_sync=True))
    assert not d.sync_safe and not d.auto_sync
    assert "HMAC, time step and display timeout are unknown" in d.reason


def test_unknown_models_are_read_only() -> None:
    d = decide(UNKNOWN, 37.4, KNOWN, TRUSTED, Config(auto_sync=True))
    assert d.verdict == "read-only" and not d.sync_safe


def test_an_untrusted_host_clock_blocks_auto_sync_and_asks_a_person() -> None:
    d = decide(C302, 37.4, KNOWN, UNTRUSTED, Config(auto_sync=True))
    assert d.sync_offered and d.needs_confirmation and not d.auto_sync
    assert "host clock is not trusted" in d.reason


def test_auto_sync_only_within_its_limit() -> None:
    cfg = Config(auto_sync=True, auto_sync_max_drift_s=60.0)
    assert decide(C302, 37.4, KNOWN, TRUSTED, cfg).auto_sync
    far = decide(C302, -600.0, KNOWN, TRUSTED, cfg)
    assert not far.auto_sync and "auto-sync limit" in far.reason and far.sync_offered


def test_defaults_count_only_when_the_operator_confirmed_them() -> None:
    assert known_settings(None, Config()) is None
    confirmed = Config(token_defaults=DefaultSettings(period=60, confirmed=True))
    ks = known_settings(None, confirmed)
    assert ks is not None and ks.settings.period == 60 and ks.source == "configured defaults"
    registry = TokenSettings(HmacAlgorithm.SHA256)
    assert known_settings(registry, confirmed) == KnownSettings(registry, "registry")


# -- drift rate ------------------------------------------------------------------------

DAY = 86400.0


def _points(start: float, offset: float, rate_s_per_day: float, days: int) -> list[DriftPoint]:
    return [
        DriftPoint(start + d * DAY, offset + rate_s_per_day * d, 0.01, "rollover")
        for d in range(days)
    ]


def test_rate_and_threshold_crossing_are_forecast() -> None:
    t0 = 1_800_000_000.0
    pts = _points(t0, 0.0, 0.25, 5)  # +0.25 s/day, now at +1.0 s after 4 days
    rate = estimate_rate(pts, [], 2.0, t0 + 4 * DAY)
    assert rate is not None
    assert rate.seconds_per_day == pytest.approx(0.25)
    assert rate.ppm == pytest.approx(0.25 / DAY * 1e6)
    assert rate.crosses_at == pytest.approx(t0 + 8 * DAY)  # 1.0 more second at 0.25/day


def test_clock_writes_split_the_history_but_not_the_rate() -> None:
    t0 = 1_800_000_000.0
    before = _points(t0, 30.0, -0.5, 3)  # 30 s fast, losing 0.5 s/day
    write = t0 + 3 * DAY
    after = _points(write + 1, 0.0, -0.5, 3)
    rate = estimate_rate(before + after, [write], 2.0, write + 2 * DAY)
    assert rate is not None
    assert rate.seconds_per_day == pytest.approx(-0.5)
    assert rate.drift_now_s == pytest.approx(-1.0, abs=0.01)
    assert rate.crosses_at == pytest.approx(write + 4 * DAY, abs=60)


def test_too_little_history_gives_no_rate() -> None:
    t0 = 1_800_000_000.0
    assert estimate_rate([DriftPoint(t0, 1.0, 0.01, "rollover")], [], 2.0, t0) is None
    close = [DriftPoint(t0, 1.0, 0.01, "r"), DriftPoint(t0 + 60, 1.0, 0.01, "r")]
    assert estimate_rate(close, [], 2.0, t0 + 60) is None


# -- registry --------------------------------------------------------------------------


def test_registry_keeps_tokens_settings_history_and_operations(tmp_path: Path) -> None:
    path = tmp_path / "state" / "registry.sqlite3"
    store = Store(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    store.seen("86596320000001", "C302-i", 100.0)
    store.seen("86596320000001", "C302-i", 200.0)
    store.record_drift("86596320000001", DriftPoint(200.0, 37.4, 0.01, "rollover", "r0"))
    assert store.token("86596320000001").settings is None  # type: ignore[union-attr]
    store.record_write(
        "86596320000001", TokenSettings(HmacAlgorithm.SHA256), 210.0, provisioned=False
    )
    store.record_operation(Operation("86596320000001", 210.0, "sync", "ok", "manual", 37.4, 0.02))
    store.close()

    again = Store(path)
    rec = again.token("86596320000001")
    assert rec is not None
    assert (rec.first_seen, rec.last_seen) == (100.0, 200.0)
    assert rec.settings == TokenSettings(HmacAlgorithm.SHA256)
    assert not rec.provisioned
    assert again.drift_history("86596320000001")[0].drift_s == 37.4
    assert again.clock_writes("86596320000001") == [210.0]
    assert [t.serial for t in again.tokens()] == ["86596320000001"]
    again.close()


def test_registry_remembers_each_tokens_clock_kind_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite3"
    store = Store(path)
    assert store.clock_kind("86596320000001") is None
    store.record_clock_kind("86596320000001", "phase-resetting", 100.0)
    store.record_clock_kind("86596320000001", "phase-keeping", 200.0)  # learnt again
    store.close()
    again = Store(path)
    assert again.clock_kind("86596320000001") == "phase-keeping"
    assert again.clock_kind("86596220000001") is None
    again.close()


# -- D-Bus method options ----------------------------------------------------------------


def test_sync_options_are_checked() -> None:
    from tokenstation.daemon.bus import dbusio
    from tokenstation.daemon.bus.ops import sync_options
    from tokenstation.daemon.station import StationError

    assert sync_options({}) == {"reader": "", "confirm_untrusted_clock": False}
    opts = sync_options(
        dbusio.pack({"algorithm": "sha256", "period": 60, "display_timeout": 15, "reader": "r"})
    )
    assert opts["settings"] == TokenSettings(HmacAlgorithm.SHA256, 60, 15)
    for bad, words in [
        ({"colour": "red"}, "unknown option(s) colour"),
        ({"algorithm": "sha1"}, "go together"),
        ({"algorithm": "md5", "period": 30, "display_timeout": 30}, "md5"),
    ]:
        with pytest.raises(StationError) as exc:
            sync_options(dbusio.pack(bad))
        assert exc.value.kind == "invalid" and words in exc.value.message
