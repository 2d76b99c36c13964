"""What a dropped file is, and whether a token can take it (no I/O beyond reading it).

Every file gets a kind and a verdict: "ok" (one or more accounts a token can hold),
"rejected" (understood, but unusable: the reason names the field), "error" (the file
cannot be read) or "ignored" (not meant for us, such as a token's serial barcode). The
accounts carry their secret as :class:`Secret`; ``as_dict`` shows a fingerprint only.
Nothing here echoes a payload's text: it may hold a secret.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from tokenstation.daemon.families.capabilities import ONE_SEED
from tokenstation.daemon.intake.otpauth import OtpAccount, parse_otpauth, parse_secret, weak_secret
from tokenstation.daemon.records import Frozen, Record
from tokenstation.daemon.safetext import clip
from tokenstation.daemon.token.errors import InvalidInput

#: Whether a token can take an account is its family's rule; a queued job must fit any
#: token (any family, any free profile), so intake asks what every family takes.
JOB_FITS = ONE_SEED

# What `tokenstation scan` needs only for some files is imported where it is used: the
# export parser, the CSV reader and the model table (a serial barcode).
TYPE_CHECKING = False  # True for type checkers; saves importing typing at start-up
if TYPE_CHECKING:
    from typing import TypeVar

    from tokenstation.daemon.token.models import ModelTable

    T = TypeVar("T")

TEXT_SUFFIXES = frozenset({".txt", ".uri"})
CSV_SUFFIXES = frozenset({".csv"})
MAX_TEXT_BYTES = 1024 * 1024
MAX_JOBS_PER_FILE = 3000
#: Longest reason a verdict carries (it may quote names from the file).
MAX_REASON = 1000


class Limits(Frozen):
    """How much one file may hold; a file over a limit is refused whole, naming the limit."""

    max_jobs: int  # [drop] max_jobs_per_file: accounts, lines, rows
    max_text_bytes: int  # [drop] max_text_size: .txt/.uri/.csv files

    def __init__(
        self, max_jobs: int = MAX_JOBS_PER_FILE, max_text_bytes: int = MAX_TEXT_BYTES
    ) -> None:
        self._set(max_jobs=max_jobs, max_text_bytes=max_text_bytes)

    def too_many(self, what: str) -> str:
        """The reason for a file over the jobs limit (``what``: "more than 3000 rows")."""
        return (
            f"{what}, over the limit of {self.max_jobs} jobs per file "
            f"([drop] max_jobs_per_file); nothing was queued: split it into files of at "
            f"most {self.max_jobs}"
        )

    def text_too_big(self, size: int) -> str:
        """The reason for a text file over the size limit."""
        return (
            f"{size} bytes, over the {self.max_text_bytes} byte limit for text and CSV files "
            "([drop] max_text_size); split it into smaller files"
        )


_SERIAL = re.compile(r"^\d{8,16}$")


DEFAULT_LIMITS = Limits()


class Kind(StrEnum):
    """What a payload or file is."""

    OTPAUTH_TOTP = "otpauth-totp"
    OTPAUTH_HOTP = "otpauth-hotp"
    MIGRATION = "google-authenticator-export"
    PHONEFACTOR = "microsoft-phonefactor"
    FIDO = "fido-passkey"
    SERIAL = "token-serial-barcode"
    URL = "url"
    TEXT = "text"
    CSV = "csv-batch"
    NO_QR = "no-qr"
    SEVERAL = "several-qr"
    UNREADABLE = "unreadable"
    UNSUPPORTED = "unsupported-file"
    UNTRUSTED = "untrusted-file"


class Candidate(Frozen):
    """An account a token can hold, maybe bound to one serial."""

    _hidden = frozenset({"account"})
    account: OtpAccount
    serial: str
    origin: str  # "QR", "line 2", "row 3", "account 1 of 4"

    def __init__(self, account: OtpAccount, serial: str = "", origin: str = "") -> None:
        self._set(account=account, serial=serial, origin=origin)


class Verdict(Record):
    """The outcome of reading one file."""

    _hidden = frozenset({"accounts", "candidates"})
    file: str
    kind: str
    verdict: str  # ok | rejected | error | ignored
    reason: str
    warnings: list[str]
    accounts: list[OtpAccount]
    candidates: list[Candidate]

    def __init__(  # noqa: PLR0917 (positional, as the dataclass it was)
        self,
        file: str,
        kind: str,
        verdict: str,
        reason: str = "",
        warnings: list[str] | None = None,
        accounts: list[OtpAccount] | None = None,
        candidates: list[Candidate] | None = None,
    ) -> None:
        self._set(
            file=file,
            kind=kind,
            verdict=verdict,
            reason=reason,
            warnings=[] if warnings is None else warnings,
            accounts=[] if accounts is None else accounts,
            candidates=[] if candidates is None else candidates,
        )

    def as_dict(self) -> dict[str, object]:
        """The JSON form of `tokenstation scan`: never a secret, a fingerprint at most."""
        return {
            "file": self.file,
            "kind": self.kind,
            "verdict": self.verdict,
            "reason": self.reason,
            "warnings": list(self.warnings),
            "accounts": [a.as_dict() for a in self.accounts],
        }


_ENROL = (
    "Drop the QR code the service shows when you add an authenticator app (otpauth://), "
    "as an image, or its URI in a .txt file."
)
_TOKEN_LIMITS = (
    "Ask the service for a TOTP code with SHA1 or SHA256, 6 digits and a 30 or 60 s period "
    "(its 'authenticator app' option); these tokens can hold nothing else."
)
_ADVICE = {
    Kind.NO_QR.value: "Make sure the whole QR code is in the image, sharp and not cropped, "
    "and drop it again.",
    Kind.SEVERAL.value: "Crop the image to one code per file and drop each file.",
    Kind.UNREADABLE.value: "Save or export it again (PNG or JPEG; text as UTF-8) and drop "
    "it again.",
    Kind.UNSUPPORTED.value: "Drop a regular file: a QR image (PNG, JPEG, WebP, GIF, BMP, "
    "TIFF), a .txt/.uri file with the otpauth:// URI, or a serial,secret CSV.",
    Kind.OTPAUTH_TOTP.value: _TOKEN_LIMITS,
    Kind.OTPAUTH_HOTP.value: _TOKEN_LIMITS,
    Kind.MIGRATION.value: _TOKEN_LIMITS,
    Kind.UNTRUSTED.value: "Drop a copy of the file (not a second name of it), as a user the "
    "station trusts: the daemon's own, or one its administrator names in [drop] owners.",
    Kind.CSV.value: "Fix the rows named above and drop the file again.",
    Kind.SERIAL.value: "Name the enrolment QR file <serial>.png to bind it to this token.",
}


_BAD_URI = "The code or URI itself is malformed: copy it again from the service and drop it again."
_BAD_SECRET = (
    "The code or URI itself is malformed: copy it again from the service (the secret is "
    "Base32, letters A-Z and digits 2-7) and drop it again."
)
_BAD_EXPORT = (
    "The export is cut short or damaged: in Google Authenticator export the accounts again "
    "(Transfer accounts, Export accounts) and scan or drop the new code."
)


_TOO_SLOW = (
    "Crop the image to the QR code (or take a screenshot of just the code) and drop it "
    "again: a smaller, sharper image is read in a fraction of a second."
)


def advice(kind: str, reason: str = "") -> str:
    """What to do about a file of ``kind`` that was refused for ``reason``."""
    otp_kinds = (Kind.OTPAUTH_TOTP.value, Kind.OTPAUTH_HOTP.value, Kind.MIGRATION.value)
    if kind in otp_kinds and "cannot be burned" not in reason:
        if "secret" in reason:
            return _BAD_SECRET
        return _BAD_EXPORT if kind == Kind.MIGRATION.value else _BAD_URI
    if kind == Kind.NO_QR.value and reason.startswith("no code found within"):
        return _TOO_SLOW
    return _ADVICE.get(kind, _ENROL)


def _describe_url(text: str) -> str:
    parts = urlsplit(text)
    host = parts.hostname or ""
    return f"a {parts.scheme}:// link{' to ' + host if host else ''}"


def classify_text(
    text: str, models: ModelTable | None = None
) -> tuple[Kind, list[OtpAccount], str]:
    """One payload -> (kind, accounts, reason when it is not an enrolment)."""
    t = text.strip()
    low = t.lower()
    if low.startswith("otpauth://"):
        account = parse_otpauth(t)
        return (Kind.OTPAUTH_TOTP if account.type == "totp" else Kind.OTPAUTH_HOTP), [account], ""
    if low.startswith("otpauth-migration://"):
        from tokenstation.daemon.intake.migration import parse_migration

        return Kind.MIGRATION, list(parse_migration(t).accounts), ""
    if low.startswith("phonefactor://"):
        return (
            Kind.PHONEFACTOR,
            [],
            "a Microsoft Authenticator activation code (phonefactor://) holds no TOTP secret; "
            "in the Microsoft account choose 'a different authenticator app' to get an "
            "otpauth:// code",
        )
    if low.startswith("fido:/"):
        return (
            Kind.FIDO,
            [],
            "a passkey (FIDO:/) sign-in code for a phone; it holds no TOTP secret",
        )
    if _SERIAL.match(t):
        if models is None:
            from tokenstation.daemon.token.models import ModelTable

            models = ModelTable()
        model = models.lookup(t)
        if model.programmable or model.name != "unknown":
            return (
                Kind.SERIAL,
                [],
                f"the serial-number barcode of a token ({t}, {model.name}), not an "
                "enrolment code; name a QR file <serial>.png to bind it to this token",
            )
    if re.match(r"^[a-z][a-z0-9+.-]*://", low):
        return Kind.URL, [], f"{_describe_url(t)}, not an enrolment code (otpauth://)"
    return Kind.TEXT, [], f"text of {len(t)} characters, not an enrolment code (otpauth://)"


def judge(
    file: str,
    kind: Kind,
    accounts: list[OtpAccount],
    reason: str,
    *,
    serial: str = "",
    origin: str = "QR",
) -> Verdict:
    """Accounts -> verdict: burnable ones become candidates, the rest say why not."""
    if not accounts:
        verdict = "ignored" if kind == Kind.SERIAL else "rejected"
        return Verdict(file, kind.value, verdict, clip(reason, MAX_REASON))
    v = Verdict(file, kind.value, "ok", accounts=accounts)
    refusals: list[str] = []
    for i, account in enumerate(accounts):
        v.warnings.extend(account.warnings)
        v.warnings.extend(weak_secret_warning(account))
        why = JOB_FITS.refusals(account)
        where = origin if len(accounts) == 1 else f"account {i + 1} of {len(accounts)}"
        if why:
            refusals.append(f"{account.label() or where}: {'; '.join(why)}")
        else:
            v.candidates.append(Candidate(account, serial, where))
    if not v.candidates:
        v.verdict = "rejected"
        v.reason = clip("cannot be burned: " + " | ".join(refusals), MAX_REASON)
    elif refusals:
        v.warnings.append(clip("skipped, cannot be burned: " + " | ".join(refusals), MAX_REASON))
    if kind == Kind.MIGRATION and v.candidates:
        v.warnings.append(
            f"a Google Authenticator export of {len(v.candidates)} account(s): each becomes a "
            "job of its own when queued; check that each goes onto the token meant for it"
        )
    return v


def weak_secret_warning(account: OtpAccount) -> list[str]:
    """A warning when the secret is shorter than NIST asks for (:func:`weak_secret`)."""
    return weak_secret(account.secret, account.label())


def _serial_from_name(path: Path) -> str:
    """A file named <serial>.png binds its job to that token."""
    stem = path.name.split(".")[0]
    return stem if _SERIAL.match(stem) else ""


def _decode(path: Path, data: bytes) -> str | Verdict:
    """The file's text, or the error verdict when it is not UTF-8."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return Verdict(path.name, Kind.UNREADABLE.value, "error", "not UTF-8 text")


def _over_limits(path: Path, data: bytes, kind: Kind, limits: Limits) -> Verdict | None:
    if len(data) > limits.max_text_bytes:
        return Verdict(path.name, kind.value, "rejected", limits.text_too_big(len(data)))
    return None


def _first(items: Iterator[T], limit: int) -> tuple[list[T], bool]:
    """Up to ``limit`` items, and whether there were more (the rest is never read)."""
    taken = list(itertools.islice(items, limit + 1))
    return taken[:limit], len(taken) > limit


def read_text_file(
    path: Path, data: bytes, models: ModelTable | None = None, limits: Limits = DEFAULT_LIMITS
) -> Verdict:
    """A .txt/.uri file: one payload per non-empty line."""
    over = _over_limits(path, data, Kind.TEXT, limits)
    if over is not None:
        return over
    text = _decode(path, data)
    if isinstance(text, Verdict):
        return text
    wanted = (ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#"))
    lines, more = _first(wanted, limits.max_jobs)
    if more:
        return Verdict(
            path.name,
            Kind.TEXT.value,
            "rejected",
            limits.too_many(f"more than {limits.max_jobs} lines"),
        )
    if not lines:
        return Verdict(path.name, Kind.TEXT.value, "rejected", "the file is empty")
    serial = _serial_from_name(path)
    if len(lines) == 1:
        return _judge_text(path.name, lines[0], serial, "the file", models)
    merged = Verdict(path.name, Kind.TEXT.value, "ok")
    kinds: set[str] = set()
    problems: list[str] = []
    for n, line in enumerate(lines, 1):
        part = _judge_text(path.name, line, serial, f"line {n}", models)
        kinds.add(part.kind)
        merged.accounts.extend(part.accounts)
        merged.candidates.extend(part.candidates)
        merged.warnings.extend(part.warnings)
        if part.verdict != "ok":
            problems.append(f"line {n}: {part.reason}")
    merged.kind = kinds.pop() if len(kinds) == 1 else "mixed"
    return _all_or_nothing(merged, problems)


def _all_or_nothing(v: Verdict, problems: list[str]) -> Verdict:
    """A file with any bad line or row queues nothing: the reason lists the first five."""
    if problems:
        v.verdict = "rejected"
        v.candidates = []
        more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        v.reason = clip("; ".join(clip(p) for p in problems[:5]), MAX_REASON) + more
    return v


def _judge_text(
    name: str, text: str, serial: str, origin: str, models: ModelTable | None
) -> Verdict:
    try:
        kind, accounts, reason = classify_text(text, models)
    except InvalidInput as exc:
        kind = Kind.MIGRATION if text.lower().startswith("otpauth-migration") else Kind.OTPAUTH_TOTP
        return Verdict(name, kind.value, "rejected", clip(f"{origin}: {exc.message}", MAX_REASON))
    return judge(name, kind, accounts, reason, serial=serial, origin=origin)


def read_csv_file(path: Path, data: bytes, limits: Limits = DEFAULT_LIMITS) -> Verdict:
    """serial,secret[,issuer,account] rows: batch jobs, each bound to its serial.

    An empty serial leaves the row's job unbound (the next token placed takes it; on a
    Molto2, rows fill consecutive free profiles).

    A reason names the row and the column, never a cell's text (a swapped column
    would put a secret there).
    """
    import csv

    over = _over_limits(path, data, Kind.CSV, limits)
    if over is not None:
        return over
    text = _decode(path, data)
    if isinstance(text, Verdict):
        return text
    try:
        wanted = (r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r))
        rows, more = _first(wanted, limits.max_jobs + 1)  # + a header row
    except csv.Error as exc:
        return Verdict(path.name, Kind.CSV.value, "rejected", f"not a CSV file ({exc})")
    if rows and rows[0] and rows[0][0].strip().lower() == "serial":
        rows = rows[1:]
    elif len(rows) > limits.max_jobs:
        more = True
    if more:
        return Verdict(
            path.name,
            Kind.CSV.value,
            "rejected",
            limits.too_many(f"more than {limits.max_jobs} rows"),
        )
    v = Verdict(path.name, Kind.CSV.value, "ok")
    problems: list[str] = []
    seen_serials: set[str] = set()
    for n, row in enumerate(rows, 1):
        cells = [c.strip() for c in row]
        if len(cells) < 2 or len(cells) > 4:
            problems.append(f"row {n}: expected serial,secret[,issuer,account]")
            continue
        serial, secret_text = cells[0], cells[1]
        issuer = cells[2] if len(cells) > 2 else ""
        name = cells[3] if len(cells) > 3 else ""
        if serial and not _SERIAL.match(serial):
            problems.append(
                f"row {n}: the serial (column 1, {len(serial)} characters) is not 8 to 16 digits"
            )
            continue
        if serial in seen_serials:  # an empty serial (unbound: any token, a Molto2's profiles)
            problems.append(f"row {n}: serial {serial} appears twice")
            continue
        if serial:
            seen_serials.add(serial)
        try:
            secret, _kind = parse_secret(secret_text)
        except InvalidInput as exc:
            problems.append(f"row {n}: secret: {exc.message}")
            continue
        account = OtpAccount("totp", issuer, name or serial or f"row {n}", secret)
        why = JOB_FITS.refusals(account)
        if why:
            problems.append(f"row {n}: {'; '.join(why)}")
            continue
        v.accounts.append(account)
        v.warnings.extend(weak_secret_warning(account))
        v.candidates.append(Candidate(account, serial, f"row {n}"))
    if not rows:
        problems.append("no rows")
    return _all_or_nothing(v, problems)


def judge_symbols(
    name: str, texts: list[str], serial: str, models: ModelTable | None = None
) -> Verdict:
    """The QR codes found in an image -> verdict."""
    if not texts:
        return Verdict(name, Kind.NO_QR.value, "rejected", "no QR code found in the image")
    if len(texts) > 1:
        kinds = []
        for t in texts:
            try:
                kinds.append(classify_text(t, models)[0].value)
            except InvalidInput:
                kinds.append("unparseable")
        return Verdict(
            name,
            Kind.SEVERAL.value,
            "rejected",
            f"the image holds {len(texts)} codes ({', '.join(kinds)}); drop one code per file "
            "so each secret goes onto the token meant for it",
        )
    return _judge_text(name, texts[0], serial, "the QR code", models)


def serial_binding(path: Path) -> str:
    """The serial a file's name binds it to ("" when none)."""
    return _serial_from_name(path)
