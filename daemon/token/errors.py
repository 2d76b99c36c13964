"""The token layer's errors: every one says what happened and what to do next.

``str(error)`` is the one line a user sees; ``error.next_step`` is kept apart so that
the CLI, notifications and D-Bus replies can lay it out as they like. No error ever
carries seed bytes.
"""

from __future__ import annotations

from enum import IntEnum

from tokenstation.daemon.token.problem import Problem, ProblemKind
from tokenstation.daemon.token.sentences import join_sentences


class SW(IntEnum):
    """Status words seen in this protocol family (token-protocol.md sections 3.2 and 8)."""

    OK = 0x9000
    WRONG_LENGTH = 0x6700
    SECURITY_NOT_SATISFIED = 0x6982
    AUTH_REFUSED = 0x6983
    CONDITIONS_NOT_SATISFIED = 0x6985
    WRONG_DATA = 0x6A80
    WRONG_P1P2 = 0x6A86
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    NO_PRECISE_DIAGNOSIS = 0x6F00


class TokenError(Problem):
    """Base of every error raised by the token layer (a failure unless a subclass says)."""

    kind = ProblemKind.FAILED
    next_step: str = "Check the token and the reader, then try again."

    def __init__(self, message: str, next_step: str | None = None) -> None:
        super().__init__(message, next_step)

    def __str__(self) -> str:
        return join_sentences(self.message, self.next_step) if self.next_step else self.message


class MalformedResponse(TokenError):
    """The card answered with bytes that do not follow the protocol."""

    next_step = (
        "This card does not answer like a programmable TOTP token; nothing was written to it."
    )


class TransportError(TokenError):
    """The reader or the link to the card failed (card removed, reader gone, pcscd down)."""

    next_step = (
        "Keep the token switched on and flat on the reader for the whole operation, then try again."
    )


class ReaderUnavailable(TransportError):
    """No PC/SC service, no reader, or no token on any reader: nothing was sent to a card."""

    kind = ProblemKind.NOT_PRESENT

    next_step = "Connect a reader, place the token on it and switch the token on."


class CardLost(TransportError):
    """The card left the field (or switched off) during an exchange."""


class StatusWordError(TokenError):
    """The card refused a command with a status word other than 90 00.

    ``meaning`` says in words what the status word means for that command; the
    message names the command, the status word and that meaning.
    """

    meaning: str = ""

    def __init__(self, command: str, sw: int, next_step: str | None = None) -> None:
        self.sw = sw
        self.command = command
        meaning = self.meaning
        if not meaning:
            try:
                meaning = SW(sw).name
            except ValueError:
                meaning = "unknown status"
        super().__init__(f"{command} refused with status {sw:04X} ({meaning})", next_step)


class AuthenticationRefused(StatusWordError):
    """69 83 (or 63 CX, X tries left) on AUTHENTICATE: wrong key or a locked token.
    Never retried."""

    def __init__(self, command: str, sw: int, next_step: str | None = None) -> None:
        self.meaning = (
            "the key was refused" if sw >> 8 == 0x63 else "wrong key, or the token is locked"
        )
        super().__init__(command, sw, next_step)

    next_step = (
        "Do not retry: repeated failures can lock it for good. Check that the token's model "
        "and vendor key are right."
    )


class NotAuthenticated(StatusWordError):
    """A secured write was refused because the session is not (or no longer) authenticated."""

    meaning = "the token found no login for this write, or its MAC did not match"
    next_step = (
        "The token dropped the authenticated session (it may have been moved or switched off). "
        "Place it again and start the operation from the beginning."
    )


class WrongData(StatusWordError):
    """The token rejected the data of a command (bad TLV, bad seed framing)."""

    next_step = (
        "The token rejected what was sent. Nothing suggests it was written; check the seed and "
        "settings and report this with a TRAFFIC log if it persists."
    )


class UnsupportedCommand(StatusWordError):
    """The card does not know the class or instruction: it is not this kind of token."""

    meaning = "the card does not know this command"

    next_step = "This card is not a programmable TOTP token of a known family; it was left alone."


class WrongLength(StatusWordError):
    """67 00: the token did not accept the command's length (the firmware's framing check)."""

    meaning = "the token did not accept the command's length"
    next_step = (
        "tokenstation sent a command the token did not accept as framed; that command wrote "
        "nothing. Report this with a TRAFFIC log (`--log-level traffic`)."
    )


class AuthFramingRefused(StatusWordError):
    """6A 80 on AUTHENTICATE: no pending challenge, or not 16 bytes. Not a key failure."""

    meaning = "the token had no pending challenge or refused the answer's framing"
    next_step = (
        "This is not a wrong key and does not count towards a lockout; nothing was written. "
        "Take the token off the reader, place it again and start over."
    )


class SeedFramingRefused(StatusWordError):
    """6A 80 on WRITE SEED: the token refused the seed framing (padding or length)."""

    meaning = "the token refused the seed framing"
    next_step = (
        "The seed was not stored; the token is not locked. On a model whose clock write erases "
        "the seed it now holds no seed: burn it again, and report this with a TRAFFIC log if "
        "it repeats."
    )


class ConfigRefused(StatusWordError):
    """6A 80 on WRITE CONFIG: the token refused the config layout; clock and seed unchanged."""

    meaning = "the token refused the config layout"
    next_step = (
        "Its clock and seed were not changed, but its running HMAC may have switched until it "
        "is switched off and on: switch it off and on, then repeat the operation; report this "
        "with a TRAFFIC log if it repeats."
    )


class NotAToken(MalformedResponse):
    """GET INFO failed: the card is not a programmable TOTP token; nothing was written to it.

    ``card_kind`` is "security-key" when a FIDO2 or OATH applet answered a read-only
    SELECT, else "other". ``applets`` lists which answered ("fido2", "oath").
    """

    card_kind: str = "other"
    applets: tuple[str, ...] = ()

    def __init__(
        self,
        message: str,
        next_step: str | None = None,
        *,
        card_kind: str = "other",
        applets: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message, next_step)
        self.card_kind = card_kind
        self.applets = applets


#: How a security key on the reader is named, everywhere (CLI, D-Bus, tray).
SECURITY_KEY_WORDS = (
    "a FIDO2 security key (it holds passkeys, not a TOTP seed): register it with the service "
    "in a browser"
)
#: A key whose OATH applet answers but not its FIDO one (FIDO switched off over NFC).
OATH_KEY_WORDS = (
    "an OATH security key (it keeps its own TOTP seeds and is not programmed like a "
    "token): add the account to it in its authenticator app (such as Yubico "
    "Authenticator) with the enrolment QR code"
)
#: What every security key's words hold (how a view's detail is told apart).
SECURITY_KEY_MARK = "security key ("


def security_key_words(applets: tuple[str, ...]) -> str:
    """How a key is named by the applets that answered its read-only SELECTs."""
    return SECURITY_KEY_WORDS if "fido2" in applets else OATH_KEY_WORDS


class RefusedByPolicy(TokenError):
    """tokenstation refused to do something unsafe; the token was not touched."""

    kind = ProblemKind.REFUSED

    next_step = "Nothing was written to the token."


class UnknownModel(RefusedByPolicy):
    """The serial prefix is not in the model table: the token is read-only for us."""

    next_step = (
        "Writing to a model that cannot be identified risks locking it. If you know its vendor "
        "family and key, add it to the configuration; otherwise use the vendor's tool."
    )


class RestrictedSync(RefusedByPolicy):
    """Setting the clock would erase the seed on this model."""

    next_step = (
        "Re-burn it (a burn also sets its clock) with the seed in hand, or leave the clock "
        "as it is."
    )


class InvalidInput(TokenError):
    """A seed or a setting the token cannot hold."""

    kind = ProblemKind.INVALID

    next_step = "Nothing was written to the token."


class VerificationFailed(TokenError):
    """A write was acknowledged but reading the clock back does not show it."""

    next_step = (
        "The write may not have taken effect. Place the token again, read its clock with "
        "`tokenstation info`, and repeat the operation if needed."
    )


#: Where a status word means something particular for one command (firmware core, section 10).
_BY_COMMAND_SW: dict[tuple[str, int], type[StatusWordError]] = {
    ("AUTHENTICATE", SW.AUTH_REFUSED): AuthenticationRefused,
    ("AUTHENTICATE", SW.WRONG_DATA): AuthFramingRefused,
    ("WRITE SEED", SW.WRONG_DATA): SeedFramingRefused,
    ("WRITE CONFIG", SW.WRONG_DATA): ConfigRefused,
}

_BY_SW: dict[int, type[StatusWordError]] = {
    SW.AUTH_REFUSED: NotAuthenticated,
    SW.SECURITY_NOT_SATISFIED: NotAuthenticated,
    SW.CONDITIONS_NOT_SATISFIED: NotAuthenticated,
    SW.WRONG_DATA: WrongData,
    SW.WRONG_LENGTH: WrongLength,
    SW.WRONG_P1P2: WrongData,
    SW.INS_NOT_SUPPORTED: UnsupportedCommand,
    SW.CLA_NOT_SUPPORTED: UnsupportedCommand,
}


def error_for(command: str, sw: int) -> StatusWordError:
    """The typed error for ``sw`` returned by ``command`` (one place maps them all).

    69 83 means "authentication refused" only on AUTHENTICATE; on a secured write it
    means the session is not authenticated (or the MAC was wrong).
    """
    if command == "AUTHENTICATE" and (sw >> 8) == 0x63:
        return AuthenticationRefused(command, sw)
    cls = _BY_COMMAND_SW.get((command, sw)) or _BY_SW.get(sw, StatusWordError)
    return cls(command, sw)
