"""`simulate` says why a token could not be placed instead of waiting or lying."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from tokenstation.daemon.simulator.stack import PcscStack, free_port_block

from conftest import SimToken, card_present


def test_nothing_listening_is_a_sentence_not_a_wait(
    cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    port = free_port_block(1)  # free: nothing listens there
    done = cli("simulate", "--port", str(port), timeout=30)
    assert done.returncode == 3, done.stdout + done.stderr
    first = done.stderr.strip().splitlines()[0]
    assert f"nothing listens on 127.0.0.1:{port}" in first
    assert "vpcd" in first and "tokenstation lab" in first
    assert "token placed" not in done.stdout
    assert "Error" not in done.stderr and "Traceback" not in done.stderr


def test_second_simulator_on_a_taken_slot_is_refused(
    pcsc_stack: PcscStack,
    simulator: Callable[..., SimToken],
    cli: Callable[..., subprocess.CompletedProcess[str]],
    tmp_path: Path,
) -> None:
    first = simulator("--serial", "86596320000417")
    for model in ([], ["--model", "molto2"], ["--foreign-card", "fido"]):
        done = cli("simulate", "--port", str(pcsc_stack.port(first.slot)), *model, timeout=30)
        assert done.returncode == 3, done.stdout + done.stderr
        assert "already holds a card" in done.stderr, done.stderr
        assert "token placed" not in done.stdout and "plugged in" not in done.stdout
    # The first token is still the one on the reader, and answers.
    assert card_present(first.reader)
    info = cli("info", "--reader", first.reader)
    assert "86596320000417" in info.stdout, info.stdout + info.stderr
