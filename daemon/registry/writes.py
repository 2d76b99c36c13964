"""What a write to a single-profile token leaves in the registry: one piece for the
daemon's writes and the command line's direct ones (`burn`, `sync` with no daemon).

Each function records what the registry keeps of the token (seen, settings, clock
write, provisioned, clock kind, drift) and returns the :class:`Operation` row, which
the caller records (the daemon's :meth:`Station.write` with its event, the command
line at once), so both paths write the same rows.
"""

from __future__ import annotations

from tokenstation.daemon.events import OperationKind, Outcome
from tokenstation.daemon.registry.store import DriftPoint, Operation, Store
from tokenstation.daemon.token.session import ClockKind, Identification, WriteResult
from tokenstation.daemon.token.settings import TokenSettings


def measured(store: Store, ident: Identification, reader: str) -> None:
    """A token was identified and its drift measured on ``reader``."""
    store.seen(ident.serial, ident.model.name, ident.host_time)
    drift(store, ident, reader)


def drift(store: Store, ident: Identification, reader: str) -> None:
    """Append ``ident``'s drift measurement."""
    d = ident.drift
    store.record_drift(
        ident.serial, DriftPoint(ident.host_time, d.drift_s, d.uncertainty_s, d.method, reader)
    )


def after_write(result: WriteResult) -> Identification | None:
    """The token as the write's read-back measured it (None: not measured after)."""
    r, residual = result, result.residual
    if residual is None:
        return None
    return Identification(r.serial, r.model, r.token_time_after, r.host_time_after, residual)


def burned(
    store: Store, serial: str, settings: TokenSettings, at: float, *, detail: str, fingerprint: str
) -> Operation:
    """A seed and ``settings`` were written at ``at``: the token is provisioned."""
    store.record_write(serial, settings, at, provisioned=True)
    return Operation(
        serial, at, OperationKind.BURN, Outcome.OK, detail, secret_fingerprint=fingerprint
    )


def synced(
    store: Store,
    serial: str,
    settings: TokenSettings,
    result: WriteResult,
    *,
    drift_before_s: float,
    detail: str,
) -> Operation:
    """The clock (and ``settings``) were written: what the sync learnt, the write itself."""
    at = result.host_time_after
    if result.clock_kind is not ClockKind.UNKNOWN:
        store.record_clock_kind(serial, result.clock_kind.value, at)
    store.record_write(serial, settings, at, provisioned=False)
    after = result.residual
    return Operation(
        serial,
        at,
        OperationKind.SYNC,
        Outcome.OK,
        detail,
        drift_before_s,
        after.drift_s if after else None,
    )


def burn_failed(
    serial: str, at: float, detail: str, *, fingerprint: str, profile: int | None = None
) -> Operation:
    """A burn that did not complete (whether the token may hold the seed: the caller's)."""
    return Operation(
        serial,
        at,
        OperationKind.BURN,
        Outcome.FAILED,
        detail,
        secret_fingerprint=fingerprint,
        profile=profile,
    )
