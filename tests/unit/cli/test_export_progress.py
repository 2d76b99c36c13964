"""`tokenstation export` on a terminal: a progress line that counts up and a final line;
into a pipe or with --json not a byte of it, and the file and stdout the same."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tokenstation.daemon.handover.generate import GenerateRequest, new_jobs
from tokenstation.daemon.provisioning.queue import JobQueue

from helpers import cli_on_pty

N = 300


@dataclass(frozen=True)
class Run:
    """A finished command: exit code, standard output, standard error (as text)."""

    returncode: int
    stdout: str
    stderr: str


def run_cli(env: dict[str, str], *args: str, tty: bool, timeout: float = 60.0) -> Run:
    """`python -m tokenstation.daemon ARGS`; ``tty``: standard error is a pseudo-terminal
    (standard output stays a pipe), else both are pipes."""
    argv = [sys.executable, "-m", "tokenstation.daemon", *args]
    if not tty:
        done = subprocess.run(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Run(done.returncode, done.stdout, done.stderr)
    code, out, terminal = cli_on_pty(env, *args, timeout=timeout)
    return Run(code, out, terminal)


def progress_lines(terminal_text: str, what: str) -> list[str]:
    """The lines ``what`` drew on the terminal, each redraw (after a carriage return) its
    own line, trailing blanks cut."""
    pieces = terminal_text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return [p.rstrip() for p in pieces if p.startswith(what + ":")]


def held_batch(home: Path) -> dict[str, str]:
    """N generated seeds burned and held in the queue the CLI finds under ``home``."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        **{f"XDG_{k}_HOME": str(home / k.lower()) for k in ("CONFIG", "STATE", "DATA", "CACHE")},
    }
    q = JobQueue(home / "data" / "tokenstation" / "queue.sqlite3")
    q.add_generated("b1", new_jobs(GenerateRequest(count=N, issuer="ACME"), "b1"))
    for job in q.jobs(["queued"]):
        q.start_burn(job.id, str(60700000 + job.id))
        q.burned(job.id, str(60700000 + job.id), model="C302-i")
    q.close()
    return env


def test_export_on_a_terminal_counts_up_and_ends_with_a_final_line(
    tmp_path: Path,
) -> None:
    env = held_batch(tmp_path / "home")
    out = tmp_path / "tokens.csv"
    run = run_cli(env, "export", "--format", "entra-csv", "--out", str(out), tty=True)
    assert run.returncode == 0, run.stderr
    lines = progress_lines(run.stderr, "exporting seeds")
    counts = [int(m.group(1)) for m in map(re.compile(r".*: (\d+) of 300 ").match, lines) if m]
    assert len(counts) >= 2 and counts == sorted(counts) and counts[-1] == N, lines
    assert re.fullmatch(r"exporting seeds: 300 done in \d+\.\d s", lines[-1]), lines
    assert f"Wrote {N} token(s)" in run.stdout
    assert "exporting" not in run.stdout


def test_export_into_a_pipe_or_with_json_writes_no_progress_and_the_same_file(
    tmp_path: Path,
) -> None:
    env = held_batch(tmp_path / "home")
    files = {}
    outputs = {}
    for name, tty, extra in (
        ("pipe", False, ()),
        ("tty-json", True, ("--json",)),
        ("pipe-json", False, ("--json",)),
    ):
        out = tmp_path / f"{name}.csv"
        run = run_cli(env, "export", "--format", "oath-csv", "--out", str(out), *extra, tty=tty)
        assert run.returncode == 0, run.stderr
        assert run.stderr == "", (name, run.stderr)
        files[name] = out.read_bytes()
        outputs[name] = run.stdout
    assert files["pipe"] == files["tty-json"] == files["pipe-json"]
    assert outputs["tty-json"].replace("tty-json", "X") == outputs["pipe-json"].replace(
        "pipe-json", "X"
    )
    assert len(json.loads(outputs["tty-json"])["job_ids"]) == N
    assert "exporting" not in outputs["pipe"]
