"""What a hostile client or a huge file can put on the bus: bounded, typed, never echoed."""

from __future__ import annotations

import pytest

from tokenstation.daemon.bus.dbusio import DBusError, Variant
from tokenstation.daemon.bus.ops import (
    MAX_PAGE,
    arg_text,
    bounded,
    for_broadcast,
    job_states,
    page_args,
    sync_options,
)
from tokenstation.daemon.station import StationError


def test_a_signal_carries_a_sample_and_the_count_never_the_whole_list() -> None:
    payload = {
        "file": "big.csv",
        "queued": [{"id": i, "label": f"user{i}"} for i in range(100_000)],
        "duplicates": ["a", "b"],
        "reason": "x" * 10_000_000,
    }
    out = bounded(payload)
    assert len(out["queued"]) == 20 and out["queued_count"] == 100_000
    assert out["duplicates"] == ["a", "b"] and "duplicates_count" not in out
    assert len(out["reason"]) < 2100


def test_the_live_code_is_never_broadcast_on_the_system_bus() -> None:
    done = {"serial": "1", "expected_code": "123456", "expected_code_valid_until": 1.0}
    assert "expected_code" in for_broadcast(done, system_bus=False)
    system = for_broadcast(done, system_bus=True)
    assert "expected_code" not in system and "expected_code_valid_until" not in system
    assert done["expected_code"] == "123456"  # the caller's reply keeps it


def test_long_or_mistyped_arguments_are_refused_by_length_and_type_only() -> None:
    with pytest.raises(DBusError) as err:
        arg_text("serial", "9" * 10_000_000)
    assert "10000000 characters" in str(err.value) and "999999" not in str(err.value)
    with pytest.raises(DBusError):
        arg_text("serial", 42)
    assert arg_text("serial", "86596320000001") == "86596320000001"


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"period": Variant("s", "30")}, "period: must be a whole number, got a string"),
        ({"confirm_untrusted_clock": Variant("s", "no")}, "must be true or false"),
        ({"confirm_untrusted_clock": Variant("x", 1)}, "must be true or false"),
        ({"reader": Variant("s", "r" * 5000)}, "5000 characters, over the limit"),
        ({"k" * 5000: Variant("b", True)}, "unknown option"),
    ],
)
def test_sync_options_are_type_checked(options: dict[str, object], words: str) -> None:
    with pytest.raises(StationError) as err:
        sync_options(options)
    assert words in err.value.message and len(err.value.message) < 200


def test_sync_options_of_the_right_types_pass() -> None:
    opts = sync_options(
        {
            "algorithm": Variant("s", "sha1"),
            "period": Variant("x", 30),
            "display_timeout": Variant("x", 30),
            "confirm_untrusted_clock": Variant("b", True),
        }
    )
    assert opts["confirm_untrusted_clock"] is True and opts["settings"].period == 30


def test_pages_are_bounded_and_states_checked() -> None:
    assert page_args(0, 0) == (0, 100)
    assert page_args(10, 10**9) == (10, MAX_PAGE)
    assert job_states([]) is None and job_states(["queued"]) == ["queued"]
    with pytest.raises(DBusError):
        job_states(["everything"])


def test_a_full_socket_buffer_means_wait_not_disconnect() -> None:
    """dbus-next and dbus-fast drop the bus on EAGAIN; the writer gets "0 bytes" instead."""
    import socket

    from tokenstation.daemon.bus.dbusio import PatientSocket

    a, b = socket.socketpair()
    a.setblocking(False)
    try:
        patient = PatientSocket(a)
        chunk = b"x" * 65536
        sent = [patient.send(chunk) for _ in range(200)]  # nobody reads b: the buffer fills
        assert sent[-1] == 0 and sum(sent) > 0
        assert patient.fileno() == a.fileno()  # everything else is the socket's
        b.recv(1 << 20)
        assert patient.send(chunk) > 0  # writable again: the write goes on
    finally:
        a.close()
        b.close()
