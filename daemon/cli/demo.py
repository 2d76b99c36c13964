"""`tokenstation demo`: the station's main job on simulated tokens, on a private PC/SC stack.

Starts its own pcscd with two vpcd readers, puts two simulated tokens on them (a
C302-i 37.4 s fast and an OTPC-P2-i 12.8 s slow), and runs what the station does
when a token is placed: detect it, identify it, measure its drift, and set the clock
where that is safe. Nothing outside its temporary directory is touched.
"""

from __future__ import annotations

import argparse
import os
import queue
import time
from typing import TYPE_CHECKING

from ..otpauth import parse_secret
from ..simulator.stack import PcscStack, StackUnavailable
from ..simulator.token import SimulatedToken
from ..simulator.vpcd import VpcdLink, contactless_atr
from ..token.errors import TokenError
from ..token.session import TokenSession, describe_drift
from ..token.settings import TokenSettings
from .common import EXIT_NO_READER, CliError

if TYPE_CHECKING:
    from ..pcsc import ReaderEvent

DEMO_SEED = "JBSWY3DPEHPK3PXP"  # the well-known example seed of the otpauth documentation


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register demo."""
    p = sub.add_parser("demo", help="see the station at work on simulated tokens (private pcscd)")
    p.add_argument("--threshold", type=float, default=2.0, help="drift (s) that calls for a sync")
    p.add_argument("--offset", type=float, default=37.4, help="clock offset of the C302-i token")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demonstration; returns 0 when every step behaved as the station should."""
    try:
        stack = PcscStack(readers=2).start()
    except StackUnavailable as exc:
        raise CliError(
            str(exc), EXIT_NO_READER, "Install pcscd and vsmartcard-vpcd (see README)."
        ) from exc
    os.environ["PCSCLITE_CSOCK_NAME"] = str(stack.socket_path)
    from .. import pcsc  # after the socket is set: libpcsclite reads it at the first call

    seed = parse_secret(DEMO_SEED)[0]
    tokens = [
        SimulatedToken(serial="86596320000417", clock_offset_s=args.offset, seed=seed),
        SimulatedToken(serial="86596220001234", clock_offset_s=-12.8, seed=seed),
    ]
    events: queue.Queue[ReaderEvent] = queue.Queue()
    monitor = pcsc.PresenceMonitor(events.put)
    links: list[VpcdLink] = []
    ok = True
    try:
        monitor.start()
        names = ", ".join(stack.reader_name(i) for i in range(2))
        print(f"Private pcscd running with readers: {names}")
        for slot, tok in enumerate(tokens):
            links.append(VpcdLink(tok, contactless_atr(b"TS-SIM01"), stack.port(slot)))
            ok = _place_and_handle(links[-1], tok, events, args.threshold) and ok
        for link in links:
            link.remove()
            print(f"token removed from {_wait_for(events, 'card-removed').reader}")
    except TokenError as exc:
        print(f"demo failed: {exc}")
        ok = False
    finally:
        monitor.stop()
        for link in links:
            link.remove()
        stack.cleanup()
    print("\nDemo " + ("completed: the station behaved as expected." if ok else "FAILED."))
    return 0 if ok else 1


def _place_and_handle(
    link: VpcdLink, token: SimulatedToken, events: queue.Queue[ReaderEvent], threshold: float
) -> bool:
    """Insert one token and do what the station does; True when all went as it should."""
    from .. import pcsc

    t0 = time.monotonic()
    link.insert()
    reader = _wait_for(events, "card-inserted").reader
    print(f"\n[{time.monotonic() - t0:5.2f} s] token placed on {reader}")
    ok = True
    with pcsc.PcscConnection(reader) as conn:
        session = TokenSession(conn)
        ident = session.identify()
        d = ident.drift
        print(f"  serial {ident.serial}, model {ident.model.name}")
        print(f"  drift {describe_drift(d.drift_s)} (±{d.uncertainty_s:.3f} s, {d.reads} reads)")
        if abs(d.drift_s) <= threshold:
            print("  within the threshold: nothing to do")
        elif ident.model.restricted_sync:
            print(
                f"  beyond {threshold:g} s, but the {ident.model.name} erases its seed when its "
                "clock is set: no sync offered; it needs a re-burn"
            )
        else:
            result = session.set_clock(TokenSettings())
            assert result.residual is not None
            r = result.residual
            print(
                f"  beyond {threshold:g} s: clock set; "
                f"now {r.describe()} (±{r.uncertainty_s:.3f} s)"
            )
            ok = abs(r.drift_s) < 0.1
    kept = token.seed is not None
    print(f"  [{time.monotonic() - t0:5.2f} s] done; the token still holds its seed: {kept}")
    return ok and kept


def _wait_for(events: queue.Queue[ReaderEvent], kind: str, timeout: float = 5.0) -> ReaderEvent:
    deadline = time.monotonic() + timeout
    while True:
        ev = events.get(timeout=max(0.01, deadline - time.monotonic()))
        if ev.kind == kind:
            return ev
