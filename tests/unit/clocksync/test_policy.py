"""The sync decision (daemon/clocksync/policy.py): when a sync is offered, asked or refused."""

from __future__ import annotations

from tokenstation.daemon.clocksync.policy import ClockTrust, KnownSettings, decide, known_settings
from tokenstation.daemon.config import Config, DefaultSettings
from tokenstation.daemon.token.models import ModelTable
from tokenstation.daemon.token.settings import HmacAlgorithm, TokenSettings

TRUSTED = ClockTrust(True, "timedated", "synchronised")
UNTRUSTED = ClockTrust(False, "timedated", "not synchronised")
TABLE = ModelTable()
C302 = TABLE.lookup("86596320000001")
P2 = TABLE.lookup("86596220000001")
UNKNOWN = TABLE.lookup("12345678")
KNOWN = KnownSettings(TokenSettings(), "registry")


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
