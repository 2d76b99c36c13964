"""`tokenstation demo`: the station's main job on simulated tokens, nothing on the host touched.

Starts a private pcscd with two vpcd readers, a private D-Bus with the real
systemd-timedated behind it, and the real `tokenstation daemon`; then, speaking only
D-Bus as the tray does, it walks through what staff do all day:

1. a C302-i 37.4 s fast is placed: the daemon reports it and offers a clock sync; the
   demo clicks "Sync clock" and the token's clock is right, its seed kept;
2. an OTPC-P2-i 12.8 s slow is placed: no sync is offered (its clock write erases the
   seed), and the daemon says so;
3. an enrolment (an otpauth URI file) is dropped into the watched folder: it is queued
   and offered for burning; the demo burns it onto the OTPC-P2-i (which also sets its
   clock), power-cycles it, and checks the code on its display is the one announced.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenstation.daemon.cli.commands import summary
from tokenstation.daemon.cli.common import EXIT_NO_READER, CliError, rough_drift_words

if TYPE_CHECKING:
    from tokenstation.daemon.simulator.stations import SiteParts

DEMO_SEED = "JBSWY3DPEHPK3PXP"  # the well-known example seed of the otpauth documentation
ENROLMENT = (
    "otpauth://totp/Bitbucket:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Bitbucket"
)
C302, P2 = "86596320000417", "86596220001234"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register demo."""
    p = sub.add_parser(
        "demo",
        help=summary("demo"),
        description="Starts a private pcscd with two virtual readers, a private D-Bus with "
        "systemd-timedated and the real daemon (nothing on the host is touched), then walks "
        "through a clock sync on a C302-i, a refused sync on an OTPC-P2-i and a burn from a "
        "dropped enrolment file, checking each step. Exit 0 when every check passes.",
    )
    p.add_argument(
        "--offset",
        type=float,
        default=37.4,
        metavar="SECONDS",
        help="how far the C302-i's clock is off, in seconds (default 37.4; negative: slow)",
    )
    p.set_defaults(func=cmd_demo)


class Demo:
    """The private stack, the daemon, the simulated tokens and the checks."""

    def __init__(self, offset: float) -> None:
        self.offset = offset
        self.t0 = time.monotonic()
        self.signals: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.failures: list[str] = []

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.t0:5.2f} s] {text}", flush=True)

    def check(self, ok: bool, what: str) -> None:
        print(f"          {'ok' if ok else 'FAILED'}: {what}", flush=True)
        if not ok:
            self.failures.append(what)

    async def next(self, name: str, timeout: float = 15.0, **match: Any) -> dict[str, Any]:
        """The next signal ``name`` matching ``match`` (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {name} {match} from the daemon")
            signal_name, payload = await asyncio.wait_for(self.signals.get(), remaining)
            if signal_name == name and all(payload.get(k) == v for k, v in match.items()):
                return payload


def station_config(work: Path) -> str:
    """The config.toml of a demo or lab station: a drop folder in ``work``, and token
    defaults the operator vouches for (so a sync needs no confirmation of them)."""
    return (
        f'[drop]\nfolder = "{work / "drop"}"\nstability_delay = 0.3\n'
        "[token_defaults]\n# The operator vouches that tokens here were burned with these:\n"
        'algorithm = "sha1"\nperiod = 30\ndisplay_timeout = 30\nconfirmed = true\n'
    )


def start_station(work: Path, name: str, readers: int) -> SiteParts:
    """A private pcscd with ``readers`` vpcd readers, a private bus with timedated and a
    running daemon, all homed in ``work``: the demo's station and the lab's."""
    from tokenstation.daemon.simulator.stack import StackUnavailable
    from tokenstation.daemon.simulator.stations import SiteParts, write_config

    try:
        parts = SiteParts(name, work, readers=readers)
    except StackUnavailable as exc:
        raise CliError(
            str(exc), EXIT_NO_READER, "Install pcscd and vsmartcard-vpcd (see README)."
        ) from exc
    write_config(work, station_config(work))
    try:
        parts.start_daemon()
    except BaseException:
        parts.close()
        raise
    return parts


async def _run(demo: Demo, work: Path) -> None:  # noqa: PLR0915 (a script, read top to bottom)
    from tokenstation.daemon.bus.client import StationClient
    from tokenstation.daemon.intake.otpauth import parse_secret
    from tokenstation.daemon.provisioning.otpcode import expected_code
    from tokenstation.daemon.simulator.runner import HISTORICAL_BYTES
    from tokenstation.daemon.simulator.token import SimulatedToken
    from tokenstation.daemon.simulator.vpcd import VpcdLink, contactless_atr
    from tokenstation.daemon.token.settings import TokenSettings

    drop = work / "drop"
    parts = start_station(work, "demo", readers=2)
    stack = parts.stack
    links: list[VpcdLink] = []
    client: StationClient | None = None
    try:
        demo.say(f"private pcscd with readers {stack.reader_name(0)!r}, {stack.reader_name(1)!r}")
        client = await StationClient.connect("session", parts.bus.address, require=False)
        await client.subscribe(lambda n, p: demo.signals.put_nowait((n, p)))
        status = await client.status()
        demo.say(
            f"tokenstation daemon {status['version']} running; host clock: "
            f"{status['host_clock']['reason']}"
        )

        seed = parse_secret(DEMO_SEED)[0]
        c302 = SimulatedToken(serial=C302, clock_offset_s=demo.offset, seed=seed)
        p2 = SimulatedToken(serial=P2, clock_offset_s=-12.8, seed=seed)
        atr = contactless_atr(HISTORICAL_BYTES)

        # 1. A C302-i, fast: the one-click sync.
        print()
        links.append(VpcdLink(c302, atr, stack.port(0)))
        links[-1].insert()
        seen = await demo.next("TokenPresented", serial=C302)
        demo.say(
            f"token placed on {seen['reader']}: {C302}, {seen['model']}, "
            f"{rough_drift_words(float(seen['drift_s']))}"
        )
        m = await demo.next("TokenMeasured", serial=C302)
        demo.say(
            f"measured: {m['drift_words']} (±{m['drift_uncertainty_s']:.3f} s); "
            f"sync offered: {m['sync_offered']}"
        )
        if m.get("needs_confirmation"):
            demo.say(f"  it asks before syncing, because {m['reason']}")
        demo.check(bool(m["sync_offered"]), "a sync is offered for the unrestricted C302-i")
        demo.say("clicking 'Sync clock' (confirming the host clock)")
        done = await client.sync(C302, confirm_untrusted_clock=True)
        demo.say(
            f"clock set: it was {done['drift_before_words']}, now {done.get('drift_after_words')}"
        )
        demo.check(
            abs(c302.snapshot()["clock_offset_s"]) < 0.1,  # type: ignore[arg-type]
            "the token's clock is within 0.1 s of the host's",
        )
        demo.check(c302.seed is not None, "the C302-i still holds its seed")

        # 2. An OTPC-P2-i, slow: no sync, and why.
        print()
        links.append(VpcdLink(p2, atr, stack.port(1)))
        links[-1].insert()
        m = await demo.next("TokenMeasured", serial=P2)
        demo.say(
            f"token placed: {P2}, {m['model']}, {m['drift_words']}; sync offered: "
            f"{m['sync_offered']}"
        )
        demo.say(f"  why: {m['reason']}")
        demo.check(
            not m["sync_offered"] and p2.snapshot()["config_writes"] == 0,
            "no sync offered and nothing written to the OTPC-P2-i",
        )

        # 3. An enrolment dropped into the folder: queued, offered, burned, checked.
        print()
        (drop / "bitbucket-alice.txt").write_text(ENROLMENT + "\n")
        demo.say(f"enrolment file dropped into {drop}")
        taken = await demo.next("FileTaken", file="bitbucket-alice.txt")
        [job] = taken["queued"]
        demo.say(
            f"taken: {taken['kind']}, queued job {job['id']} {job['label']} "
            f"(secret {job['secret_fingerprint']}); the file is gone: "
            f"{not (drop / 'bitbucket-alice.txt').exists()}"
        )
        offer = await demo.next("BurnOffered", serial=P2)
        demo.say(f"offered: {offer['question']}")
        demo.say("clicking 'Burn' (a re-burn also sets the OTPC-P2-i's clock)")
        burned = await client.burn_job(int(job["id"]), P2)
        code = str(burned["expected_code"])
        demo.say(f"burned; after a power cycle it should show {code[:3]} {code[3:]}")
        p2.power_cycle()
        shown = p2.snapshot()
        enrolled = parse_secret(ENROLMENT.split("secret=")[1].split("&", maxsplit=1)[0])[0]
        now_code, _ = expected_code(enrolled, TokenSettings(), float(str(shown["host_time"])))
        demo.say(
            f"power-cycled: the display shows {str(shown['code'])[:3]} {str(shown['code'])[3:]}"
        )
        demo.check(shown["code"] == now_code, "the display shows the account's current code")
        demo.check(
            abs(p2.snapshot()["clock_offset_s"]) < 0.1,  # type: ignore[arg-type]
            "the OTPC-P2-i's clock was set by the burn",
        )

        print()
        for link in links:
            link.remove()
        removed: set[str] = set()
        while removed != {C302, P2}:
            removed.add(str((await demo.next("TokenRemoved"))["serial"]))
        demo.say("tokens removed; the registry remembers them:")
        for t in await client.tokens():
            op = t.get("last_operation", {})
            demo.say(
                f"  {t['serial']} {t['model']}: {t['measurements']} drift reading(s), "
                f"last operation {op.get('kind')} {op.get('outcome')}"
            )
    finally:
        for link in links:
            link.remove()
        if client is not None:
            await client.close()
        parts.close()


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demonstration; 0 when every step behaved as the station should."""
    work = Path(tempfile.mkdtemp(prefix="tokenstation-demo-"))
    os.chmod(work, 0o700)
    demo = Demo(args.offset)
    try:
        asyncio.run(_run(demo, work))
    except (TimeoutError, RuntimeError) as exc:
        demo.failures.append(str(exc) or type(exc).__name__)
        print(f"demo failed: {exc}")
    finally:
        if not demo.failures:
            shutil.rmtree(work, ignore_errors=True)
    if demo.failures:
        print(f"\nDemo FAILED ({len(demo.failures)} check(s)); the daemon's log is in {work}.")
        return 1
    print("\nDemo completed: the station behaved as expected.")
    return 0
