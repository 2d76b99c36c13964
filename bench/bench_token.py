"""Token operations over the real virtual stack: wall time, APDUs, host CPU, drift error.

Runs a private pcscd + vpcd (as the tests do) and `tokenstation simulate` in its own
process, so the CPU time measured here is the host side only (tokenstation + the
pyscard/libpcsclite client), not the simulated card.

    .venv/bin/python bench/bench_token.py [--reps 20] [--offsets 12] [--json FILE]
    .venv/bin/python bench/bench_token.py --only clock-phase [--offsets 12] [--json FILE]

Drift error is compared, in the same run and on the same reads, with the
whole-second method the peer tools use (keyroost and totptokutil print
token_time - int(host_time)).

The clock-phase part syncs simulated tokens of both clock kinds (phase-resetting,
phase-keeping) on both firmware personalities and reads the truth from the
simulator's state file: drift error before the sync, and the error left after it by
the phase-aware sync beside one timed write (what tokenstation did before).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchlib import start_sim, stop_sim

from tokenstation.daemon.simulator.stack import PcscStack
from tokenstation.daemon.token.secret import Secret
from tokenstation.daemon.token.settings import TokenSettings

SEED = Secret(b"12345678901234567890")


def measure(reader: str, op: Callable[[Any], object], reps: int) -> dict[str, float]:
    """Median wall, CPU and APDU count of ``op(session)`` on fresh connections."""
    from tokenstation.daemon import pcsc
    from tokenstation.daemon.token.session import TokenSession

    walls, cpus, apdus, waits = [], [], [], []
    rng = random.Random(reps)
    for _ in range(reps):
        # A token is placed at no particular moment: do not start in step with its second.
        time.sleep(rng.uniform(0, 1))
        with pcsc.PcscConnection(reader) as conn:
            session = TokenSession(conn)
            slept = [0.0]
            real_sleep = session._clock.sleep  # type: ignore[attr-defined]

            def counting_sleep(
                s: float, real: Callable[[float], None] = real_sleep, acc: list[float] = slept
            ) -> None:
                t = time.perf_counter()
                real(s)
                acc[0] += time.perf_counter() - t

            session._clock.sleep = counting_sleep  # type: ignore[attr-defined]
            c0, w0 = time.process_time(), time.perf_counter()
            op(session)
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
            apdus.append(session.stats.apdus)
            waits.append(slept[0])
    return {
        "wall_ms": statistics.median(walls) * 1000,
        "waiting_ms": statistics.median(waits) * 1000,
        "host_cpu_ms": statistics.median(cpus) * 1000,
        "host_cpu_per_apdu_ms": statistics.median(c / a for c, a in zip(cpus, apdus, strict=True))
        * 1000,
        "apdus": statistics.median(apdus),
    }


def rtt(reader: str, n: int = 500) -> float:
    from tokenstation.daemon import pcsc
    from tokenstation.daemon.token import commands

    with pcsc.PcscConnection(reader) as conn:
        times = []
        for _ in range(n):
            t = time.perf_counter()
            conn.transmit(commands.GET_INFO)
            times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def drift_errors(stack: PcscStack, offsets: list[float]) -> dict[str, Any]:
    from tokenstation.daemon import pcsc
    from tokenstation.daemon.token.session import TokenSession

    ours, peer = [], []
    for off in offsets:
        proc = start_sim(stack, "--clock-offset", repr(off))
        try:
            with pcsc.PcscConnection(stack.reader_name(0)) as conn:
                session = TokenSession(conn)
                first = session.read_info()
                est = session.measure_drift(first)
            ours.append(abs(est.drift_s - off))
            peer.append(abs((first.info.token_time - int(first.midpoint)) - off))
        finally:
            stop_sim(stack, proc)
    return {
        "n": len(offsets),
        "ours_median_s": statistics.median(ours),
        "ours_max_s": max(ours),
        "whole_second_median_s": statistics.median(peer),
        "whole_second_max_s": max(peer),
    }


def true_offset(state_file: Path) -> float:
    """The simulated token's clock minus host time, from a state written after now."""
    t = time.time()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError):
            state = {}
        if state.get("host_time", 0) > t + 0.01:
            return float(state["clock_offset_s"])
        time.sleep(0.02)
    raise RuntimeError("no fresh simulator state")


def clock_phase_errors(stack: PcscStack, offsets: list[float], tmp: Path) -> dict[str, Any]:
    """Per personality and clock kind: drift error, and the error left by each way to sync."""
    from tokenstation.daemon import pcsc
    from tokenstation.daemon.token.session import TokenSession

    out: dict[str, Any] = {}
    for profile in ("token2", "opent2otp"):
        for phase in ("reset", "keep"):
            drift_err, aware, aware_writes, single = [], [], [], []
            kinds: dict[str, int] = {}
            for off in offsets:
                state = tmp / f"{profile}-{phase}.json"
                common = ["--clock-phase", phase, "--firmware-profile", profile]
                proc = start_sim(
                    stack, "--clock-offset", repr(off), "--state-file", str(state), *common
                )
                try:
                    with pcsc.PcscConnection(stack.reader_name(0)) as conn:
                        session = TokenSession(conn)
                        ident = session.identify()
                        result = session.set_clock(TokenSettings(), before=ident.drift)
                    drift_err.append(abs(ident.drift.drift_s - off))
                    aware.append(abs(true_offset(state)))
                    aware_writes.append(result.clock_writes)
                    kinds[result.clock_kind.value] = kinds.get(result.clock_kind.value, 0) + 1
                finally:
                    stop_sim(stack, proc)
                proc = start_sim(
                    stack, "--clock-offset", repr(off), "--state-file", str(state), *common
                )
                try:
                    with pcsc.PcscConnection(stack.reader_name(0)) as conn:
                        TokenSession(conn).set_clock(TokenSettings(), measure_after=False)
                    single.append(abs(true_offset(state)))
                finally:
                    stop_sim(stack, proc)
            out[f"{profile}/{phase}"] = {
                "drift_error_median_s": statistics.median(drift_err),
                "drift_error_max_s": max(drift_err),
                "after_sync_median_s": statistics.median(aware),
                "after_sync_max_s": max(aware),
                "writes_median": statistics.median(aware_writes),
                "writes_max": max(aware_writes),
                "one_write_median_s": statistics.median(single),
                "one_write_max_s": max(single),
                "kinds": kinds,
            }
    return out


def print_clock_phase(d: dict[str, Any], n: int) -> None:
    print(f"clock phase, {n} offsets per row (errors against the simulator's true clock):")
    print(
        "| personality / clock | drift error median (max) | after phase-aware sync median "
        "(max) | writes median (max) | after one timed write median (max) | kind reported |"
    )
    print("|---|---|---|---|---|---|")
    for name, r in d.items():
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(r["kinds"].items()))
        print(
            f"| {name} | {r['drift_error_median_s'] * 1000:.1f} ms "
            f"({r['drift_error_max_s'] * 1000:.1f}) | {r['after_sync_median_s'] * 1000:.0f} ms "
            f"({r['after_sync_max_s'] * 1000:.0f}) | {r['writes_median']:g} "
            f"({r['writes_max']}) | {r['one_write_median_s'] * 1000:.0f} ms "
            f"({r['one_write_max_s'] * 1000:.0f}) | {kinds} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--offsets", type=int, default=12)
    ap.add_argument("--only", choices=["clock-phase"], help="run only this part")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    stack = PcscStack(readers=2).start()
    os.environ["PCSCLITE_CSOCK_NAME"] = str(stack.socket_path)
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "python": platform.python_version(),
    }
    rng = random.Random(20261127)
    offsets = [round(rng.uniform(-120, 120), 4) for _ in range(args.offsets)]
    if args.only == "clock-phase":
        try:
            results["clock_phase"] = clock_phase_errors(stack, offsets, stack.workdir)
        finally:
            stack.cleanup()
        print(f"machine: {results['machine']}; Python {results['python']}")
        print_clock_phase(results["clock_phase"], len(offsets))
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n")
        return
    try:
        reader = stack.reader_name(0)
        proc = start_sim(stack, "--serial", "86596320000001", "--clock-offset", "12.3456")
        try:
            results["apdu_rtt_ms"] = rtt(reader)
            results["ops"] = {
                "read_info (1 GET INFO)": measure(reader, lambda s: s.read_info(), args.reps),
                "identify --quick": measure(reader, lambda s: s.identify(precise=False), args.reps),
                "identify (precise drift)": measure(reader, lambda s: s.identify(), args.reps),
                "set clock (C302-i)": measure(
                    reader, lambda s: s.set_clock(TokenSettings(), measure_after=False), args.reps
                ),
                "burn": measure(reader, lambda s: s.burn(SEED, TokenSettings()), args.reps),
            }
        finally:
            stop_sim(stack, proc)
        results["drift_error"] = drift_errors(stack, offsets)
        results["clock_phase"] = clock_phase_errors(stack, offsets, stack.workdir)
    finally:
        stack.cleanup()

    print(f"machine: {results['machine']}; Python {results['python']}")
    print(f"GET INFO round trip over pcscd+vpcd: median {results['apdu_rtt_ms']:.3f} ms")
    print(
        "| operation | wall (median) | of which waiting on purpose | APDUs | host CPU | "
        "host CPU per APDU |"
    )
    print("|---|---|---|---|---|---|")
    for name, r in results["ops"].items():
        print(
            f"| {name} | {r['wall_ms']:.1f} ms | {r['waiting_ms']:.1f} ms | {r['apdus']:.0f} | "
            f"{r['host_cpu_ms']:.2f} ms | {r['host_cpu_per_apdu_ms']:.3f} ms |"
        )
    d = results["drift_error"]
    print(
        f"drift error over {d['n']} offsets: ours median {d['ours_median_s'] * 1000:.1f} ms, "
        f"max {d['ours_max_s'] * 1000:.1f} ms; whole-second method (peers) median "
        f"{d['whole_second_median_s'] * 1000:.0f} ms, max {d['whole_second_max_s'] * 1000:.0f} ms"
    )
    print_clock_phase(results["clock_phase"], len(offsets))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
