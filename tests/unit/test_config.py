"""Configuration (daemon/config.py): safe defaults, a full file, refusals with key and
reason, flags over the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokenstation.daemon.config import Config, ConfigError, load, parse
from tokenstation.daemon.token.models import ModelTable
from tokenstation.daemon.token.settings import HmacAlgorithm, TokenSettings


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
