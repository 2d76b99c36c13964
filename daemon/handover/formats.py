"""The hand-over formats, one table: adding a format is one writer module and one line here."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import overload

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


#: ``progress(done, total)`` as a format renders its records.
Progress = Callable[[int, int], object]


class _Counted(Sequence[BurnedToken]):
    """The records to render, telling ``progress`` as the writer goes through them (each
    writer goes through them once, in order)."""

    def __init__(self, records: list[BurnedToken], progress: Progress) -> None:
        self._records = records
        self._progress = progress

    def __len__(self) -> int:
        return len(self._records)

    @overload
    def __getitem__(self, i: int) -> BurnedToken: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[BurnedToken]: ...
    def __getitem__(self, i: int | slice) -> BurnedToken | Sequence[BurnedToken]:
        return self._records[i]

    def __iter__(self) -> Iterator[BurnedToken]:
        total = len(self._records)
        for n, r in enumerate(self._records, 1):
            yield r
            self._progress(n, total)


def render(
    fmt: Format,
    records: Sequence[BurnedToken],
    protection: Protection,
    progress: Progress | None = None,
) -> Rendered:
    """Split ``records`` into those ``fmt`` carries and those it cannot (named, left
    pending), sort by burn order, and render the carried ones (telling ``progress``)."""
    written: list[BurnedToken] = []
    left: list[tuple[BurnedToken, str]] = []
    for r in sorted(records, key=lambda r: r.order):
        why = fmt.refuse(r)
        if why is None:
            written.append(r)
        else:
            left.append((r, why))
    if not written:
        return Rendered(b"", written, left)
    shown = written if progress is None else _Counted(written, progress)
    return Rendered(fmt.render(shown, protection), written, left)
