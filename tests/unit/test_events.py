"""The event codec and the single-instance lock."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tokenstation.daemon.events import (
    DecodeError,
    Fault,
    FaultKind,
    QueueState,
    from_signal,
    to_wire,
)
from tokenstation.daemon.instance import AlreadyRunning, InstanceLock


def test_events_decode_from_their_signals_and_ignore_keys_they_do_not_know() -> None:
    fault = Fault(kind=FaultKind.SERVICE_LOST, message="gone", time=1.5)
    wire = to_wire(fault)
    assert wire == {"time": 1.5, "kind": "service-lost", "message": "gone", "next_step": ""}
    assert from_signal("Error", {**wire, "added_later": 1}) == fault
    assert from_signal("NotOurs", wire) is None


def test_a_payload_that_does_not_fit_is_a_decode_error_not_a_default() -> None:
    with pytest.raises(DecodeError, match="length"):
        from_signal("QueueState", {"paused": True})
    with pytest.raises(DecodeError, match="paused"):
        from_signal("QueueState", {"paused": "yes", "length": 1})
    with pytest.raises(DecodeError, match="kind"):
        from_signal("Error", {"kind": "meltdown", "message": "?"})
    state = from_signal("QueueState", {"time": 2.0, "paused": False, "length": 2})
    assert state == QueueState(paused=False, length=2, time=2.0)


def test_a_second_lock_on_the_state_dir_names_the_holder(tmp_path: Path) -> None:
    state, other = tmp_path / "state", tmp_path / "other"
    state.mkdir()
    other.mkdir()
    first = InstanceLock.acquire([state, state], "session")
    try:
        with pytest.raises(AlreadyRunning) as second:
            InstanceLock.acquire([other, state], "system")
        assert f"pid {os.getpid()}, session bus" in str(second.value)
        assert str(state) in str(second.value)
        InstanceLock.acquire([other], "system").release()  # the failed try let go of it
    finally:
        first.release()
    InstanceLock.acquire([state], "system").release()  # free again once released


def test_no_view_or_json_document_shows_a_negative_zero(capsys: pytest.CaptureFixture[str]) -> None:
    """A drift rounded to 0 from below is 0.0 on the bus and in --json, never "-0.0"."""
    import dataclasses
    import math

    from tokenstation.daemon.cli.common import emit_json
    from tokenstation.daemon.events import to_wire

    emit_json({"drift_s": round(-0.0004, 3), "nested": [{"after": -0.0}]})
    assert "-0.0" not in capsys.readouterr().out

    @dataclasses.dataclass(frozen=True)
    class View:
        drift_s: float
        history: tuple[float, ...]

    wire = to_wire(View(round(-0.0004, 3), (-0.0,)))
    assert math.copysign(1.0, wire["drift_s"]) == 1.0  # type: ignore[arg-type]
    assert math.copysign(1.0, wire["history"][0]) == 1.0  # type: ignore[index]
