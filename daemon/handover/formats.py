"""The hand-over formats, one table: adding a format is one writer module and one line here."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tokenstation.daemon.handover import entra_csv, entra_json, oath_csv, pskc_writer
from tokenstation.daemon.handover.protection import Protection
from tokenstation.daemon.handover.record import BurnedToken

#: Why a format cannot carry a record, or None when it can.
Refusal = Callable[[BurnedToken], str | None]
#: The file's bytes for records the format carries, in the order given.
Render = Callable[[Sequence[BurnedToken], Protection], bytes]


@dataclass(frozen=True)
class Format:
    """One hand-over format."""

    name: str
    summary: str
    refuse: Refusal
    render: Render
    encrypted: bool  # True: needs a pre-shared key or a password (or --plaintext)


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("pskc", pskc_writer.SUMMARY, pskc_writer.refuse, pskc_writer.render, True),
        Format("entra-csv", entra_csv.SUMMARY, entra_csv.refuse, entra_csv.render, False),
        Format("entra-json", entra_json.SUMMARY, entra_json.refuse, entra_json.render, False),
        Format("oath-csv", oath_csv.SUMMARY, oath_csv.refuse, oath_csv.render, False),
    )
}


@dataclass(frozen=True)
class Rendered:
    """A format's output: the file's bytes, the records in it, those left pending and why."""

    data: bytes
    written: list[BurnedToken]
    left: list[tuple[BurnedToken, str]]


def render(fmt: Format, records: Sequence[BurnedToken], protection: Protection) -> Rendered:
    """Split ``records`` into those ``fmt`` carries and those it cannot (named, left
    pending), sort by burn order, and render the carried ones."""
    written: list[BurnedToken] = []
    left: list[tuple[BurnedToken, str]] = []
    for r in sorted(records, key=lambda r: r.order):
        why = fmt.refuse(r)
        if why is None:
            written.append(r)
        else:
            left.append((r, why))
    return Rendered(fmt.render(written, protection) if written else b"", written, left)
