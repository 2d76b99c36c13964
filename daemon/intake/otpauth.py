"""Seeds as people type them and otpauth:// URIs as services print them (pure, no I/O).

Lenient where the world is sloppy (padding, spaces, case, issuer in the label or in a
parameter, unknown parameters), strict where the token is: every refusal names the
field and the reason. The secret travels as a :class:`Secret`, never as text.
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import parse_qsl, unquote, urlsplit

from tokenstation.daemon.families.capabilities import ONE_SEED
from tokenstation.daemon.records import Frozen
from tokenstation.daemon.token.errors import InvalidInput
from tokenstation.daemon.token.limits import RECOMMENDED_MIN_BITS
from tokenstation.daemon.token.secret import Secret

_B32_ALPHABET = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
_HEX_DIGITS = set("0123456789abcdefABCDEF")
_SEPARATORS = re.compile(r"[\s\-]+")


def _strip(text: str) -> str:
    return _SEPARATORS.sub("", text.strip())


def decode_base32(text: str) -> Secret:
    """Base32 with or without padding, any case, spaces and hyphens ignored."""
    s = _strip(text).replace("%3D", "=").replace("%3d", "=").rstrip("=").upper()
    if not s:
        raise InvalidInput("the secret is empty")
    bad = sorted(set(s) - _B32_ALPHABET)
    if bad:
        # Name the kind of character, not the characters: they are part of a secret.
        kinds = sorted({"digits 0, 1, 8 or 9" if c in "0189" else "other characters" for c in bad})
        raise InvalidInput(
            f"the secret is not Base32: it has {' and '.join(kinds)} (Base32 uses A-Z and 2-7 only)"
        )
    if len(s) % 8 in (1, 3, 6):
        raise InvalidInput(
            f"the secret is not valid Base32: {len(s)} characters cannot be whole bytes"
        )
    try:
        raw = base64.b32decode(s + "=" * (-len(s) % 8))
    except binascii.Error as exc:
        raise InvalidInput(f"the secret is not valid Base32 ({exc})") from None
    return Secret(raw)


def decode_hex(text: str) -> Secret:
    """Hex digits, optional 0x, spaces ignored."""
    s = _strip(text)
    if s[:2].lower() == "0x":
        s = s[2:]
    if not s or set(s) - _HEX_DIGITS:
        raise InvalidInput("the secret is not hexadecimal (0-9, a-f)")
    if len(s) % 2:
        raise InvalidInput(f"the hex secret has an odd number of digits ({len(s)})")
    return Secret(bytes.fromhex(s))


def weak_secret(secret: Secret, who: str = "") -> list[str]:
    """The one warning for a secret shorter than NIST asks for (the token still takes it):
    the drop folder, `scan` and `burn` all say it with these words."""
    bits = len(secret) * 8
    if not 0 < bits < RECOMMENDED_MIN_BITS:
        return []
    return [
        f"{who or 'the account'}: the secret is {bits} bits, under the "
        f"{RECOMMENDED_MIN_BITS} bits NIST SP 800-63B asks for; the token takes it, but ask "
        "the service for a longer one if you can"
    ]


def parse_secret(text: str) -> tuple[Secret, str]:
    """A secret typed as Base32 or hex, detected; returns (secret, "base32" | "hex").

    ``hex:`` and ``base32:`` prefixes force the reading. A string that is valid as
    both (only A-F and 2-7, even length) is refused rather than guessed.
    """
    raw = text.strip()
    low = raw.lower()
    if low.startswith("hex:"):
        return decode_hex(raw[4:]), "hex"
    if low.startswith("base32:"):
        return decode_base32(raw[7:]), "base32"
    s = _strip(raw)
    if s[:2].lower() == "0x":
        return decode_hex(s), "hex"
    is_hex = bool(s) and not set(s) - _HEX_DIGITS and len(s) % 2 == 0
    if is_hex and set(s) & set("0189"):
        return decode_hex(s), "hex"
    if is_hex:
        try:
            decode_base32(s)
        except InvalidInput:
            return decode_hex(s), "hex"
        raise InvalidInput(
            "the secret reads as both hex and Base32",
            "Write it as hex:... or base32:... to say which it is; nothing was written.",
        )
    return decode_base32(s), "base32"


class OtpAccount(Frozen):
    """One account from an otpauth URI. ``algorithm`` is upper-case (SHA1, SHA256, ...)."""

    _hidden = frozenset({"secret"})
    type: str
    issuer: str
    account: str
    secret: Secret
    algorithm: str
    digits: int
    period: int
    warnings: tuple[str, ...]

    def __init__(  # noqa: PLR0917 (positional, as the dataclass it was)
        self,
        type: str,
        issuer: str,
        account: str,
        secret: Secret,
        algorithm: str = "SHA1",
        digits: int = 6,
        period: int = 30,
        warnings: tuple[str, ...] = (),
    ) -> None:
        self._set(
            type=type,
            issuer=issuer,
            account=account,
            secret=secret,
            algorithm=algorithm,
            digits=digits,
            period=period,
            warnings=warnings,
        )

    def label(self) -> str:
        """issuer:account, or the account alone."""
        return f"{self.issuer}:{self.account}" if self.issuer else self.account

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form with a fingerprint, never the secret."""
        return {
            "issuer": self.issuer,
            "account": self.account,
            "type": self.type,
            "algorithm": self.algorithm,
            "digits": self.digits,
            "period": self.period,
            "secret_fingerprint": self.secret.fingerprint,
        }


def parse_otpauth(uri: str) -> OtpAccount:
    """Parse an otpauth:// URI leniently; raise InvalidInput naming the field at fault."""
    text = uri.strip()
    parts = urlsplit(text)
    if parts.scheme.lower() != "otpauth":
        raise InvalidInput("not an otpauth:// URI")
    otp_type = parts.netloc.lower()
    if otp_type not in ("totp", "hotp"):
        raise InvalidInput(f"type: {parts.netloc!r} is neither totp nor hotp")
    label = unquote(parts.path.lstrip("/")).strip()
    label_issuer, _, account = label.partition(":") if ":" in label else ("", "", label)
    params: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        params.setdefault(key.lower(), value)
    warnings: list[str] = []
    if "secret" not in params or not params["secret"].strip():
        raise InvalidInput("secret: missing from the URI")
    secret = decode_base32(params["secret"].replace(" ", ""))
    issuer = params.get("issuer", "").strip()
    label_issuer = label_issuer.strip()
    if issuer and label_issuer and issuer != label_issuer:
        warnings.append(f"issuer parameter {issuer!r} differs from the label's {label_issuer!r}")
    algorithm_raw = params.get("algorithm", "SHA1").strip()
    algorithm = algorithm_raw.upper().replace("-", "")
    if algorithm_raw and algorithm_raw != algorithm_raw.upper():
        warnings.append(
            f"algorithm written in lower case ({algorithm_raw!r}); read as {algorithm}, "
            "but many authenticator apps would have used SHA1"
        )
    digits = _int_param(params, "digits", 6)
    period = _int_param(params, "period", 30)
    return OtpAccount(
        type=otp_type,
        issuer=issuer or label_issuer,
        account=account.strip(),
        secret=secret,
        algorithm=algorithm,
        digits=digits,
        period=period,
        warnings=tuple(warnings),
    )


def _int_param(params: dict[str, str], name: str, default: int) -> int:
    value = params.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"{name}: {value!r} is not a whole number") from None


def burnable_refusals(account: OtpAccount) -> list[str]:
    """Why a queued job could not hold this account (empty when it can): the one rule
    (``families/capabilities.py``) for what every token family takes."""
    return ONE_SEED.refusals(account)


def require_burnable(account: OtpAccount) -> None:
    """Raise InvalidInput listing every reason the account cannot be burned."""
    refusals = burnable_refusals(account)
    if refusals:
        raise InvalidInput(
            f"{account.label() or 'this account'} cannot be burned: " + "; ".join(refusals)
        )
