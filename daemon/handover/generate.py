"""Seeds made here: a batch of burn jobs with fresh random seeds, or one per assigned user."""

from __future__ import annotations

import csv
import io
import secrets
import time
from dataclasses import dataclass

from tokenstation.daemon.intake.otpauth import OtpAccount
from tokenstation.daemon.provisioning.queue import NewJob
from tokenstation.daemon.token.problem import Problem, ProblemKind
from tokenstation.daemon.token.secret import Secret

#: Seed sizes: the HMAC's block-friendly output length (RFC 4226/6238 test seeds).
SEED_BYTES = {"sha1": 20, "sha256": 32}
PERIODS = (30, 60)
MAX_COUNT = 1000
DEFAULT_ISSUER = "tokenstation"


class GenerateProblem(Problem, ValueError):
    """A generate request that cannot be done (the message says what to change)."""

    kind = ProblemKind.INVALID


@dataclass(frozen=True)
class Assignment:
    """One row of an assignment file: the user, and the token's printed serial if known."""

    upn: str
    serial: str = ""


@dataclass(frozen=True)
class GenerateRequest:
    """``count`` unassigned seeds, or one per ``assign`` row."""

    count: int = 0
    issuer: str = DEFAULT_ISSUER
    algorithm: str = "sha1"
    period: int = 30
    assign: tuple[Assignment, ...] = ()

    def check(self) -> None:
        """Refuse what cannot be burned or handed over."""
        if self.algorithm not in SEED_BYTES:
            raise GenerateProblem(f"algorithm {self.algorithm!r}: give sha1 or sha256")
        if self.period not in PERIODS:
            raise GenerateProblem(f"period {self.period}: give 30 or 60 (what Entra ID takes)")
        if not self.issuer or len(self.issuer) > 64 or ":" in self.issuer:
            raise GenerateProblem("issuer: give a name of 1 to 64 characters without ':'")
        n = len(self.assign) or self.count
        if bool(self.assign) == bool(self.count):
            raise GenerateProblem("give either a count or an assignment file, not both or none")
        if not 1 <= n <= MAX_COUNT:
            raise GenerateProblem(f"{n} jobs: give 1 to {MAX_COUNT} at a time")
        serials = [a.serial for a in self.assign if a.serial]
        if len(serials) != len(set(serials)):
            raise GenerateProblem("the assignment file names one serial twice")


def new_batch_id(now: float | None = None) -> str:
    """A batch id a person can read and type: the UTC time and 4 random hex digits."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now if now is not None else time.time()))
    return f"{stamp}-{secrets.token_hex(2)}"


def new_jobs(req: GenerateRequest, batch: str) -> list[NewJob]:
    """One job per seed, each seed fresh from the OS CSPRNG, labelled ISSUER:upn (or
    ISSUER:BATCH-NNN when unassigned)."""
    req.check()
    rows = req.assign or tuple(Assignment("") for _ in range(req.count))
    jobs = []
    for n, row in enumerate(rows, 1):
        seed = Secret(secrets.token_bytes(SEED_BYTES[req.algorithm]))
        account = row.upn or f"{batch}-{n:03d}"
        otp = OtpAccount("totp", req.issuer, account, seed, req.algorithm.upper(), 6, req.period)
        jobs.append(NewJob(otp, row.serial, f"generated batch {batch}", upn=row.upn))
    return jobs


def read_assignment(text: str) -> tuple[Assignment, ...]:
    """An assignment CSV: a header row with ``upn`` and optionally ``serial``; every
    refusal names the line and the field."""
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    if "upn" not in fields:
        raise GenerateProblem(
            "the assignment file needs a header row naming a `upn` column (and optionally `serial`)"
        )
    reader.fieldnames = fields
    rows = []
    for line, row in enumerate(reader, 2):
        upn = (row.get("upn") or "").strip()
        serial = (row.get("serial") or "").strip()
        if not upn:
            raise GenerateProblem(f"line {line}: the upn is empty")
        if len(upn) > 256 or any(c.isspace() or ord(c) < 32 for c in upn):
            raise GenerateProblem(f"line {line}: upn {upn[:40]!r} is not a user name")
        if serial and not (serial.isalnum() and len(serial) <= 32):
            raise GenerateProblem(f"line {line}: serial {serial[:40]!r} is not a token serial")
        rows.append(Assignment(upn, serial))
    return tuple(rows)
