"""Molto2 configuration and the guards that keep single-profile code away from a Molto2."""

from __future__ import annotations

import pytest

from tokenstation.daemon import config
from tokenstation.daemon.cli.common import CliError
from tokenstation.daemon.cli.molto2_cmds import refuse_single_profile
from tokenstation.daemon.families.molto2_settings import customer_key
from tokenstation.daemon.token import molto2 as m

MOLTO2_READER = "TOKEN2 Molto2 [CCID Interface] 00 00"


def test_customer_key_defaults_to_the_factory_key() -> None:
    assert customer_key(config.parse({})) == m.DEFAULT_CUSTOMER_KEY


def test_customer_key_is_read_and_never_shown() -> None:
    cfg = config.parse({"molto2": {"customer_key": "hex:00112233"}})
    assert customer_key(cfg) == bytes.fromhex("00112233")
    assert "00112233" not in repr(cfg) and "00112233" not in str(cfg.describe())


@pytest.mark.parametrize("value", ["hex:zz", "", 42, "tab\tkey"])
def test_bad_customer_keys_are_refused_with_the_key_name(value: object) -> None:
    with pytest.raises(config.ConfigError, match=r"\[molto2\] customer_key"):
        config.parse({"molto2": {"customer_key": value}})


def test_the_daemon_watches_a_molto2_reader_and_the_ignore_list_still_applies() -> None:
    readers = config.parse({}).readers
    assert readers.accepts(MOLTO2_READER)
    assert readers.accepts("HID OMNIKEY 5427 CK 00 00")
    assert readers.accepts("Token2 PIN+R3 00 00")
    ignoring = config.parse({"readers": {"ignore": ["molto2"]}}).readers
    assert not ignoring.accepts(MOLTO2_READER)
    assert ignoring.accepts("HID OMNIKEY 5427 CK 00 00")


def test_single_profile_commands_refuse_a_molto2_reader() -> None:
    with pytest.raises(CliError, match="Molto2"):
        refuse_single_profile(MOLTO2_READER)
    refuse_single_profile("Virtual PCD 00 00")
