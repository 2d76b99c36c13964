"""The token-family seam (daemon/families/): one table, one rule for what a token holds,
the family found from anything that names it, and a third family plugged in through the
table alone (the Station examines, decides and words it without knowing it)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tokenstation.daemon.cards import CardOperation, Presence, StationPort
from tokenstation.daemon.clocksync.policy import ClockTrust, KnownSettings, SyncDecision, decide
from tokenstation.daemon.config import Config, DefaultSettings
from tokenstation.daemon.events import Origin, TokenMeasured, TokenPresented
from tokenstation.daemon.families import table
from tokenstation.daemon.families.base import CardAtHand, Reading
from tokenstation.daemon.families.capabilities import ONE_SEED, Capabilities
from tokenstation.daemon.families.molto2 import MOLTO2
from tokenstation.daemon.families.single import SINGLE
from tokenstation.daemon.intake.otpauth import OtpAccount
from tokenstation.daemon.intake.payload import JOB_FITS
from tokenstation.daemon.token.models import Model, ModelTable
from tokenstation.daemon.token.secret import Secret
from tokenstation.daemon.token.session import Connection, TokenSession
from tokenstation.daemon.token.settings import TokenSettings

from station_rig import C302, Rig


def test_every_family_takes_every_job_the_intake_lets_in() -> None:
    """A queued job may go to any token placed next: each family takes what intake allows."""
    for family in table.FAMILIES:
        assert family.capabilities().takes(JOB_FITS), family.name


def test_what_a_token_holds_is_one_rule_with_each_familys_words() -> None:
    account = OtpAccount("totp", "Git", "bob", Secret(b"k" * 20), "SHA256", 8, 60)
    assert ONE_SEED.refusals(account) == ["digits: 8 digits cannot be shown; these tokens show 6"]
    assert MOLTO2.capabilities().refusals(account) == []
    odd = OtpAccount("hotp", "", "x", Secret(b"k" * 70), "SHA512", 7, 15)
    fields = [r.split(":")[0] for r in MOLTO2.capabilities().refusals(odd)]
    assert fields == ["type", "algorithm", "digits", "period", "secret"]
    assert "Molto2 profiles show 4, 6, 8 or 10" in MOLTO2.capabilities().refusals(odd)[2]


def test_a_model_whose_clock_write_erases_its_seed_says_so() -> None:
    erasing = ModelTable().lookup("86596220000001")  # an OTPC-P2-i
    assert erasing.name == "OTPC-P2-i"
    assert SINGLE.capabilities(erasing).sync_keeps_seed is False
    assert SINGLE.capabilities(ModelTable().lookup(C302)).sync_keeps_seed is True
    assert SINGLE.capabilities().sync_keeps_seed is True
    assert MOLTO2.capabilities().sync_keeps_seed is True


@pytest.mark.parametrize(
    ("thing", "family"),
    [
        ({"family": "molto2", "serial": "58000001"}, "molto2"),
        ({"family": "single"}, "single"),
        ({"serial": "86596320000001"}, "single"),  # a view that names none
        ("molto2", "molto2"),
    ],
)
def test_the_family_is_found_from_a_view_or_a_name(thing: object, family: str) -> None:
    assert table.family_of(thing).name == family


def test_a_molto2_reader_is_read_as_a_molto2_without_a_single_profile_read() -> None:
    """Known by its reader's name, nothing is sent to find out what it is."""
    assert MOLTO2.by_reader("TOKEN2 Molto2 [CCID Interface] 00 00")
    assert not SINGLE.by_reader("TOKEN2 Molto2 [CCID Interface] 00 00")
    assert not MOLTO2.by_reader("Virtual PCD 00 00")  # vpcd: a probe, never the name


class ThirdFamily:
    """A family the house does not know: a single-profile protocol under another name,
    recognised by its reader, with three profiles' worth of words."""

    name = "third"
    settings_from_registry = False

    def recognise(self, thing: object) -> bool:
        return getattr(thing, "family", None) is self or thing == self.name

    def by_reader(self, reader: str) -> bool:
        return reader.startswith("Test Reader")

    def probe(self, reader: str, conn: Connection) -> bool:
        return False

    def examine(self, card: CardAtHand) -> Reading:
        ident = TokenSession(card.conn, card.models, card.clock).identify(first=card.first)
        return Reading(self, ident)

    def capabilities(self, model: Model | None = None) -> Capabilities:
        return Capabilities("third tokens", 3, True)

    def decide(
        self,
        model: Model,
        drift_s: float,
        trust: ClockTrust,
        cfg: Config,
        registry: TokenSettings | None,
    ) -> SyncDecision:
        return decide(model, drift_s, KnownSettings(TokenSettings(), "third"), trust, cfg)

    def sync_settings(
        self, station: StationPort, p: Presence, given: TokenSettings | None
    ) -> KnownSettings | None:
        return None

    def sync_write(
        self,
        station: StationPort,
        known: KnownSettings | None,
        origin: Origin,
        *,
        confirm: bool,
        wait: bool,
    ) -> CardOperation[Any]:
        raise NotImplementedError

    def drift_words(self, drift_s: float | None) -> str:
        return f"third: {drift_s:+.0f} s"

    def view_fields(self, p: Presence) -> dict[str, Any]:
        return {"family": self.name, "name_words": f"Third {p.serial}", "holds_words": "3 slots"}

    def log_words(self, p: Presence, verdict: str) -> str:
        return f"third {p.serial}"


def test_a_third_family_plugs_in_through_the_table_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    third = ThirdFamily()
    monkeypatch.setattr(table, "FAMILIES", (third, *table.FAMILIES))

    async def scenario() -> None:
        rig = Rig(tmp_path, 12.0, Config(token_defaults=DefaultSettings(confirmed=True)))
        rig.place()
        measured = await rig.wait_for(TokenMeasured)
        assert rig.kinds().index(TokenPresented) < rig.kinds().index(TokenMeasured)
        assert (measured.family, measured.serial) == ("third", C302)
        assert measured.name_words == f"Third {C302}"
        assert measured.holds_words == "3 slots"
        assert measured.drift_words == "third: +12 s"
        p = rig.station.find(C302)
        assert table.family_of(p) is third
        assert table.family_of(p.view().__dict__) is third
        await rig.station.close()

    asyncio.run(scenario())
