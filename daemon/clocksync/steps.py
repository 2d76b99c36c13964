"""The steps both clock-sync writes share (a single-profile token's, a Molto2's profiles').

Before the write, the host clock is trusted or its use confirmed; after a failure or a
refusal, what the registry records and the event.
"""

from __future__ import annotations

import time

from tokenstation.daemon.cards import Presence, StationError, StationPort, Written
from tokenstation.daemon.events import ErrorKind, OperationKind, Origin, Outcome, SyncFailed
from tokenstation.daemon.registry.store import Operation
from tokenstation.daemon.token.errors import TokenError


async def host_clock_or_confirmed(station: StationPort, confirmed: bool) -> bool:
    """Check the host clock now; True when it is untrusted but its use was confirmed.

    Raises StationError (NEEDS_CONFIRMATION) when it is untrusted and not confirmed."""
    trust = await station.check_clock(fresh=True)
    if not trust.trusted and not confirmed:
        raise StationError(
            ErrorKind.NEEDS_CONFIRMATION,
            f"the host clock is not trusted: {trust.reason}",
            "Fix the host clock, or confirm that it is right and sync again.",
        )
    return not trust.trusted


def sync_failed(
    p: Presence, exc: StationError | TokenError, origin: Origin, drift_before: float | None = None
) -> Written | None:
    """A sync that failed (the token's error) or was refused: the operation and SyncFailed.

    None for a question to the caller (confirm the clock): nothing is recorded then.
    ``drift_before`` is recorded with a failure (the token was measured, then failed)."""
    if isinstance(exc, StationError) and exc.kind != ErrorKind.REFUSED:
        return None
    outcome = Outcome.REFUSED if isinstance(exc, StationError) else Outcome.FAILED
    op = Operation(
        p.serial,
        time.time(),
        OperationKind.SYNC,
        outcome,
        exc.message,
        drift_before if outcome == Outcome.FAILED else None,
    )
    event = SyncFailed(
        reader=p.reader,
        serial=p.serial,
        model=p.model_name,
        origin=origin,
        outcome=outcome,
        message=exc.message,
        next_step=exc.next_step,
    )
    return Written(op, event)
