"""Words the sync commands share, whatever the family and the transport: what a token's
clock did with a sync, and why the host clock is not trusted."""

from __future__ import annotations

from tokenstation.daemon.token.session import ClockKind


def clock_kind_words(kind: str, writes: int, next_time: str) -> str:
    """One line on a token's clock kind and the writes a sync took (also for daemon syncs)."""
    count = f"{writes} clock write{'s' if writes > 1 else ''}"
    if kind == ClockKind.PHASE_KEEPING:
        return (
            f"Its clock is phase-keeping: it keeps its sub-second phase when set, so whole "
            f"seconds bring it within 0.5 s and no closer ({count}). {next_time}"
        )
    if kind == ClockKind.PHASE_RESETTING:
        return f"Its clock is phase-resetting: it starts the written second at once ({count})."
    return f"Its clock kind could not be told from this sync ({count})."


def untrusted_clock_reason() -> str:
    """Why the host clock is not trusted, or "" when it is (asks systemd-timedated)."""
    import asyncio

    from tokenstation.daemon.clocksync.hostclock import HostClockTrust

    async def ask() -> str:
        trust = HostClockTrust(log_changes=False)
        try:
            answer = await trust.check()
        finally:
            await trust.close()
        return "" if answer.trusted else answer.reason

    return asyncio.run(ask())
