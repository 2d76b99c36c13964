"""The simulated devices beside the single-profile token, by kind name, for the command
line's faces of the simulator (`simulate --model`, `lab --token`): their flags and their
runners, so those commands name no device of their own."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

from tokenstation.daemon.simulator.molto2_runner import Molto2Runner, add_arguments, run
from tokenstation.daemon.token.secret import Secret

#: The `simulate --model` choices beside "single".
MODELS = ("molto2",)


def add_device_arguments(p: argparse.ArgumentParser) -> None:
    """Every device's own `simulate` flags."""
    add_arguments(p)


def run_model(model: str, args: argparse.Namespace) -> int | None:
    """Run the device `simulate --model MODEL` asks for (None: the single-profile token)."""
    return run(args) if model in MODELS else None


def lab_serial(kind: str, n: int) -> str | None:
    """The serial of lab device ``n`` of ``kind`` (None: not one of these devices)."""
    return f"5800{n + 1:04d}" if kind in MODELS else None


def lab_runner(
    kind: str,
    n: int,
    offset: float,
    port: int,
    *,
    seed: Secret,
    state: Path,
    out: TextIO,
) -> Molto2Runner | None:
    """Lab device ``n`` of ``kind`` with one example account in it (None: not one of
    these devices)."""
    from tokenstation.daemon.simulator.molto2 import SimulatedMolto2
    from tokenstation.daemon.token.molto2 import ProfileSettings

    serial = lab_serial(kind, n)
    if serial is None:
        return None
    device = SimulatedMolto2(serial=serial, clock_offset_s=offset)
    device.preload(0, seed, ProfileSettings(), "Example:lab")
    return Molto2Runner(device, port, state_file=state, out=out)
