"""The record of a write the command line makes itself (`burn`, `sync --direct`, or
either with no daemon running): the rows the daemon writes for the same write, by the
same code (:mod:`tokenstation.daemon.registry.writes`, :mod:`...provisioning.provlog`),
in the station's registry (its file, or the shared database) and provisioning log.

The record is opened before the token is touched: a registry that cannot be written
refuses the write, so nothing is written that the station would not know of (station
mode never burns over a token recorded as burned). The station's instance lock is held
meanwhile, so no daemon starts beside a burn; a burn while a daemon holds it (one this
command did not find on its bus) is refused, as it must go through that daemon.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tokenstation.daemon.cli.common import EXIT_UNAVAILABLE, CliError, load_config
from tokenstation.daemon.registry import writes
from tokenstation.daemon.token.session import Identification, WriteResult

if TYPE_CHECKING:
    from tokenstation.daemon.config import Config
    from tokenstation.daemon.provisioning.queue import JobQueue
    from tokenstation.daemon.registry.store import Store
    from tokenstation.daemon.token.errors import TokenError
    from tokenstation.daemon.token.secret import Secret
    from tokenstation.daemon.token.settings import TokenSettings

log = logging.getLogger(__name__)

#: What the records name as the writer (the daemon's say manual, auto or station).
ORIGIN = "command line"
#: The provisioning log's source column for a burn the command line made itself.
SOURCE = "tokenstation burn (command line, no job)"


@dataclass(frozen=True)
class Account:
    """Who a burned seed is for (empty for a bare secret)."""

    issuer: str = ""
    account: str = ""

    def label(self) -> str:
        """issuer:account, as jobs are named."""
        return f"{self.issuer}:{self.account}" if self.issuer else self.account


class Record:
    """The open registry, queue (for the shared log) and provisioning log of this station."""

    def __init__(self, cfg: Config, store: Store, queue: JobQueue, log_path: Path) -> None:
        self.cfg = cfg
        self.store = store
        self.queue = queue
        self.log_path = log_path

    def burned(
        self,
        reader: str,
        result: WriteResult,
        settings: TokenSettings,
        seed: Secret,
        who: Account,
    ) -> None:
        """A seed was written: the token provisioned, the operation, the log row."""
        from tokenstation.daemon.provisioning import provlog

        at = result.host_time_after
        self.store.seen(result.serial, result.model.name, at)
        self._drift_after(reader, result)
        op = writes.burned(
            self.store,
            result.serial,
            settings,
            at,
            detail=f"{ORIGIN} on {reader}; {who.label() or 'a bare secret'}",
            fingerprint=seed.fingerprint,
        )
        self.store.record_operation(op)
        entry = provlog.row(
            at=at,
            station=self.cfg.station,
            serial=result.serial,
            model=result.model.name,
            issuer=who.issuer,
            account=who.account,
            fingerprint=seed.fingerprint,
            algorithm=settings.hmac.name,
            period=settings.period,
            job_id="",
            source=SOURCE,
        )
        provlog.append(self.log_path, entry, self.queue)

    def _drift_after(self, reader: str, result: WriteResult) -> None:
        """The drift the write's read-back measured, recorded as the daemon's is."""
        after = writes.after_write(result)
        if after is not None:
            writes.drift(self.store, after, reader)

    def burn_failed(
        self, serial: str, model: str, seed: Secret, why: str, *, maybe_written: bool
    ) -> None:
        """A burn that did not complete; one that may have reached the seed write counts
        as provisioned with its settings unknown (as an interrupted daemon burn does)."""
        now = time.time()
        self.store.seen(serial, model, now)
        if maybe_written:
            self.store.mark_uncertain_burn(serial, now)
            why += "; the token may or may not hold the seed"
        op = writes.burn_failed(serial, now, f"{ORIGIN}: {why}", fingerprint=seed.fingerprint)
        self.store.record_operation(op)

    def synced(
        self, reader: str, before: Identification, result: WriteResult, settings: TokenSettings
    ) -> None:
        """A clock write: the drift before (and after), the settings, the operation."""
        writes.measured(self.store, before, reader)
        self._drift_after(reader, result)
        op = writes.synced(
            self.store,
            result.serial,
            settings,
            result,
            drift_before_s=before.drift.drift_s,
            detail=f"{ORIGIN} on {reader}; settings from the command line",
        )
        self.store.record_operation(op)


@contextmanager
def direct_record(config_path: Path | None, *, beside_daemon: bool) -> Iterator[Record]:
    """The station's record, opened for a direct write (refusals: :class:`CliError`).

    ``beside_daemon``: a running daemon (holding the state folder) is no reason to
    refuse; the write is recorded in its registry all the same (`sync --direct`)."""
    from tokenstation.daemon.instance import AlreadyRunning, InstanceLock
    from tokenstation.daemon.provisioning.provisioner import default_paths
    from tokenstation.daemon.service import StoreRefused, open_stores, registry_path, state_dir

    cfg = load_config(config_path)
    nothing = "Nothing was written."
    try:
        _folder, queue_path, log_path = default_paths(cfg)
        folder = state_dir(cfg)
        lock: InstanceLock | None = InstanceLock.acquire([folder, queue_path.parent], "no")
    except AlreadyRunning as exc:
        if not beside_daemon:
            raise CliError.of(
                exc,
                message=f"{exc}, and this command did not reach it on its bus",
                next_step="A burn goes through the running daemon: give its bus (--bus system "
                f"for a station's daemon), or stop it first. {nothing}",
            ) from None
        lock = None
    except OSError as exc:
        raise CliError(
            f"the station's registry cannot be written here ({exc.strerror or exc}), so the "
            "write could not be recorded",
            EXIT_UNAVAILABLE,
            "Run it as the user the daemon runs as (a station's: through its daemon), or "
            f"give --config with a state folder you may write. {nothing}",
        ) from None
    try:
        try:
            store, queue = open_stores(cfg, registry_path(cfg), queue_path)
        except StoreRefused as exc:
            raise CliError.of(
                exc,
                message="the station's registry cannot be opened, so the write could not "
                f"be recorded: {exc}",
                next_step=f"{exc.next_step} {nothing}".strip(),
            ) from None
        try:
            yield Record(cfg, store, queue, log_path)
        finally:
            queue.close()
            store.close()
    finally:
        if lock is not None:
            lock.release()


def record_failure(
    record: Record, serial: str, model: str, seed: Secret, exc: TokenError | BaseException
) -> None:
    """After a burn raised: record it (a refusal by policy wrote nothing), never mask it."""
    from tokenstation.daemon.token.errors import RefusedByPolicy, TokenError

    maybe_written = not isinstance(exc, RefusedByPolicy)
    why = exc.message if isinstance(exc, TokenError) else "interrupted"
    try:
        record.burn_failed(serial, model, seed, why, maybe_written=maybe_written)
    except Exception:
        log.exception("the failed burn of %s could not be recorded", serial)
