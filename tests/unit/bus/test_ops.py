"""D-Bus method options (daemon/bus/ops.py): SyncToken's options are checked."""

from __future__ import annotations

import pytest

from tokenstation.daemon.bus import dbusio
from tokenstation.daemon.bus.ops import sync_options
from tokenstation.daemon.station import StationError
from tokenstation.daemon.token.settings import HmacAlgorithm, TokenSettings


def test_sync_options_are_checked() -> None:
    assert sync_options({}) == {"reader": "", "confirm_untrusted_clock": False}
    opts = sync_options(
        dbusio.pack({"algorithm": "sha256", "period": 60, "display_timeout": 15, "reader": "r"})
    )
    assert opts["settings"] == TokenSettings(HmacAlgorithm.SHA256, 60, 15)
    for bad, words in [
        ({"colour": "red"}, "unknown option(s) colour"),
        ({"algorithm": "sha1"}, "go together"),
        ({"algorithm": "md5", "period": 30, "display_timeout": 30}, "md5"),
    ]:
        with pytest.raises(StationError) as exc:
            sync_options(dbusio.pack(bad))
        assert exc.value.kind == "invalid" and words in exc.value.message
