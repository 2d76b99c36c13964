"""What tokenstation says about cards that are not tokens, and about every status word.

The cards here are the real simulators (the FIDO foreign card and the firmware-core
personality), driven in-process; only the PC/SC transport is skipped.
"""

from __future__ import annotations

import pytest

from tokenstation.daemon.simulator.foreign import ForeignCard
from tokenstation.daemon.simulator.token import SimulatedToken
from tokenstation.daemon.token import commands, crypto
from tokenstation.daemon.token.errors import (
    OATH_KEY_WORDS,
    SECURITY_KEY_WORDS,
    AuthenticationRefused,
    AuthFramingRefused,
    ConfigRefused,
    NotAToken,
    NotAuthenticated,
    SeedFramingRefused,
    UnsupportedCommand,
    WrongLength,
    error_for,
)
from tokenstation.daemon.token.secret import Secret
from tokenstation.daemon.token.session import TokenSession
from tokenstation.daemon.token.settings import TokenSettings

from helpers import VirtualClock

KEY = crypto.TOKEN2_KEY
SEED = Secret(b"12345678901234567890")


class CardConnection:
    """Hands APDUs to any simulated card in-process."""

    def __init__(self, card: ForeignCard | SimulatedToken) -> None:
        self.card = card

    def transmit(self, apdu: bytes, *, redact: bool = False) -> bytes:
        reply = self.card.process(apdu)
        assert reply is not None
        return reply


WRITES = {commands.INS_GET_CHALLENGE, commands.INS_AUTHENTICATE, 0xD4, 0xC5}


@pytest.mark.parametrize("operation", ["identify", "sync", "burn"])
def test_a_fido_key_is_named_and_gets_nothing_but_read_only_selects(operation: str) -> None:
    card = ForeignCard("fido")
    session = TokenSession(CardConnection(card), clock=VirtualClock())
    with pytest.raises(NotAToken) as err:
        if operation == "identify":
            session.identify()
        elif operation == "sync":
            session.set_clock(TokenSettings())
        else:
            session.burn(SEED, TokenSettings())
    assert err.value.card_kind == "security-key"
    assert err.value.applets == ("fido2", "oath")
    assert str(err.value).count(SECURITY_KEY_WORDS) == 1
    sent = [bytes.fromhex(a) for a in card.received]
    assert sent == [
        commands.GET_INFO,
        commands.select_aid(commands.FIDO_AID),
        commands.select_aid(commands.YKOATH_AID),
    ]
    assert not any(a[0] == commands.CLA_MAC or a[1] in WRITES for a in sent)
    assert not any(crypto.TOKEN2_KEY in a for a in sent)


def test_a_key_with_only_its_oath_applet_is_named_as_an_oath_key_not_a_fido_one() -> None:
    """An OATH authenticator key with FIDO switched off answers the YKOATH SELECT only:
    a security key all the same, named for what it is, and sent nothing else."""
    card = ForeignCard("oath")
    session = TokenSession(CardConnection(card), clock=VirtualClock())
    with pytest.raises(NotAToken) as err:
        session.identify()
    assert err.value.card_kind == "security-key" and err.value.applets == ("oath",)
    assert OATH_KEY_WORDS in str(err.value) and "FIDO2" not in str(err.value)
    assert "not a programmable token" not in str(err.value)
    sent = [bytes.fromhex(a) for a in card.received]
    assert sent == [
        commands.GET_INFO,
        commands.select_aid(commands.FIDO_AID),
        commands.select_aid(commands.YKOATH_AID),
    ]


def test_a_card_that_answers_neither_applet_stays_not_a_programmable_token() -> None:
    card = ForeignCard("plain")
    with pytest.raises(NotAToken) as err:
        TokenSession(CardConnection(card), clock=VirtualClock()).identify()
    assert err.value.card_kind == "other"
    assert "not a programmable token" in str(err.value)
    assert "FIDO" not in str(err.value)
    assert len(card.received) == 3  # GET INFO and the two SELECTs, nothing else


def test_a_token_is_never_probed_for_applets() -> None:
    clock = VirtualClock()
    token = SimulatedToken(profile="opent2otp", host_time=clock.time)
    from helpers import DirectConnection

    conn = DirectConnection(token, clock)
    TokenSession(conn, clock=clock).identify()
    assert set(conn.sent) == {commands.GET_INFO}


@pytest.mark.parametrize(
    ("command", "sw", "cls", "words"),
    [
        ("AUTHENTICATE", 0x6983, AuthenticationRefused, "do not retry"),
        ("AUTHENTICATE", 0x6A80, AuthFramingRefused, "not a wrong key"),
        ("WRITE SEED", 0x6A80, SeedFramingRefused, "refused the seed framing"),
        ("WRITE CONFIG", 0x6A80, ConfigRefused, "refused the config layout"),
        ("WRITE SEED", 0x6983, NotAuthenticated, "no login"),
        ("WRITE CONFIG", 0x6983, NotAuthenticated, "MAC"),
        ("WRITE CONFIG", 0x6700, WrongLength, "length"),
        ("GET INFO", 0x6D00, UnsupportedCommand, "does not know"),
        ("GET INFO", 0x6E00, UnsupportedCommand, "does not know"),
    ],
)
def test_every_status_word_of_the_firmware_has_a_typed_error_and_a_next_step(
    command: str, sw: int, cls: type, words: str
) -> None:
    err = error_for(command, sw)
    assert type(err) is cls
    assert words.lower() in str(err).lower()
    assert err.next_step and f"{sw:04X}" in err.message


def test_a_seed_framing_refusal_never_says_locked() -> None:
    text = str(error_for("WRITE SEED", 0x6A80)).lower()
    assert "refused the seed framing" in text
    assert "not locked" in text and "may be locked" not in text


def test_the_firmwares_seed_framing_refusal_reaches_the_user_as_such() -> None:
    # A real 6A80 from the firmware personality on a mis-framed seed write.
    clock = VirtualClock()
    token = SimulatedToken(profile="opent2otp", host_time=clock.time)
    session = TokenSession(CardConnection(token), clock=clock)
    model = session._models.lookup(token.serial)
    session.authenticate(model)
    unpadded = crypto.sm4_ecb_encrypt(KEY, bytes(range(1, 33)))
    with pytest.raises(SeedFramingRefused, match="refused the seed framing"):
        session._exchange("WRITE SEED", commands.secured(KEY, 0xC5, 1, 0, unpadded))
