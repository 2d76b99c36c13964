"""`tokenstation queue generate` through the real daemon: on a terminal a progress line
counting up (the daemon's GenerateProgress signals) and a final line; into a pipe or with
--json not a byte of it, and stdout as before."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from helpers import cli_on_pty

pytestmark = pytest.mark.pcsc


def drawn(text: str) -> list[str]:
    pieces = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return [p.rstrip() for p in pieces if p.startswith("generating seeds:")]


def test_generate_on_a_terminal_counts_up_then_a_final_line(
    start_daemon: Callable[..., Any], station_env: dict[str, str]
) -> None:
    start_daemon()
    rc, out, term = cli_on_pty(station_env, "queue", "generate", "--count", "1000")
    assert rc == 0, term
    lines = drawn(term)
    counts = [int(m.group(1)) for m in map(re.compile(r".*: (\d+) of 1000 ").match, lines) if m]
    assert len(counts) >= 2 and counts == sorted(counts) and counts[-1] == 1000, lines
    assert re.fullmatch(r"generating seeds: 1000 done in \d+\.\d s", lines[-1]), lines
    assert out.count("Queued job ") == 1000 and "generating" not in out


def test_generate_into_a_pipe_or_with_json_shows_no_progress(
    start_daemon: Callable[..., Any],
    station_env: dict[str, str],
    cli_bus: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    start_daemon()
    piped = cli_bus("queue", "generate", "--count", "50")
    assert piped.returncode == 0 and piped.stderr == "", piped.stderr
    assert piped.stdout.count("Queued job ") == 50
    rc, out, term = cli_on_pty(station_env, "queue", "generate", "--count", "50", "--json")
    assert rc == 0 and term == "", term
    answer = json.loads(out)
    assert set(answer) == {"ok", "batch", "job_ids"} and len(answer["job_ids"]) == 50
    piped_json = cli_bus("queue", "generate", "--count", "50", "--json")
    assert piped_json.stderr == "" and set(json.loads(piped_json.stdout)) == set(answer)
