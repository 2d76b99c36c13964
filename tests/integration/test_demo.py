"""The README's first command: `tokenstation demo` runs the whole station and checks it."""

from __future__ import annotations

import os

import pytest

from conftest import run_cli

pytestmark = pytest.mark.pcsc


def test_demo_walks_through_sync_refusal_and_burn(pcsc_stack: object) -> None:
    done = run_cli(dict(os.environ), "demo", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "sync offered: True" in out and "clock set: it was 37.4 s fast, now in time" in out
    assert "erases its seed" in out
    assert "offered: Burn Bitbucket:alice onto token 86596220001234?" in out
    assert "FAILED" not in out and "Demo completed" in out
