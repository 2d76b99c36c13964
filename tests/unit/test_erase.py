"""Erasing a taken file survives a daemon killed midway (see test_reliability.py)."""

from __future__ import annotations

from pathlib import Path

from tokenstation.daemon.dropfolder import ignored_name
from tokenstation.daemon.provisioning import _erase, finish_erasures


def test_a_taken_file_is_erased_and_a_half_erased_one_is_finished_at_start(
    tmp_path: Path,
) -> None:
    taken = tmp_path / "alice.txt"
    taken.write_text("otpauth://totp/X:alice?secret=JBSWY3DPEHPK3PXP\n")
    _erase(taken)
    assert list(tmp_path.iterdir()) == []
    # What a daemon killed between hiding and unlinking leaves: never taken again ...
    left = tmp_path / ".bob.png.erasing"
    left.write_bytes(b"secret bytes")
    assert ignored_name(left.name)
    # ... and erased at the next start.
    finish_erasures(tmp_path)
    assert list(tmp_path.iterdir()) == []
