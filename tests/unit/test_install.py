"""install-user-service / uninstall-user-service, in temporary XDG folders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        "DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent",
        "XDG_RUNTIME_DIR": str(home / "run"),
    }
    return subprocess.run(
        [sys.executable, "-m", "tokenstation.daemon", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_install_writes_the_user_files_and_uninstall_removes_only_them(tmp_path: Path) -> None:
    out = run(tmp_path, "install-user-service", "--no-enable")
    assert out.returncode == 0, out.stderr
    unit = tmp_path / "config/systemd/user/tokenstation.service"
    autostart = tmp_path / "config/autostart/tokenstation-tray.desktop"
    activation = tmp_path / "data/dbus-1/services/org.tokenstation.TokenStation1.service"
    app = tmp_path / "data/applications/tokenstation.desktop"
    icon = tmp_path / "data/icons/hicolor/48x48/apps/tokenstation.png"
    for path in (unit, autostart, activation, app, icon):
        assert path.exists(), path
        assert f"wrote {path}" in out.stdout or path == icon
    text = unit.read_text()
    assert "BusName=org.tokenstation.TokenStation1" in text and "Restart=on-failure" in text
    exec_line = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    assert exec_line.endswith(" daemon") and "tokenstation" in exec_line
    assert "Exec=" in autostart.read_text() and autostart.read_text().rstrip().endswith("true")

    # Without a user systemd instance, enabling fails and says so; the files stay.
    failed = run(tmp_path, "install-user-service")
    assert failed.returncode == 1
    assert "the files are in place, but `systemctl --user daemon-reload` failed" in failed.stderr

    mine = tmp_path / "config/autostart/other.desktop"
    mine.write_text("[Desktop Entry]\n")
    app.write_text("[Desktop Entry]\n# edited by the user\n")
    gone = run(tmp_path, "uninstall-user-service")
    assert gone.returncode == 0
    assert not unit.exists() and not autostart.exists() and not activation.exists()
    assert not icon.exists()
    assert app.exists() and f"left {app}: not written by install-user-service" in gone.stdout
    assert mine.exists()


def test_packaged_files_are_what_tokenstation_generates_and_a_stale_one_is_named(
    tmp_path: Path,
) -> None:
    """packaging/ (what debian/ installs) matches the generator; --check names a stale file."""
    from tokenstation.daemon.units import differences, main

    assert differences(Path(__file__).parents[2] / "packaging") == []
    assert main([str(tmp_path)]) == 0
    assert differences(tmp_path) == []
    unit = tmp_path / "systemd/user/tokenstation.service"
    unit.write_text(unit.read_text().replace("Restart=on-failure", "Restart=no"))
    (tmp_path / "icons/hicolor/16x16/apps/tokenstation.png").write_bytes(b"")
    assert differences(tmp_path) == [
        "systemd/user/tokenstation.service",
        "icons/hicolor/16x16/apps/tokenstation.png",
    ]
    assert main(["--check", str(tmp_path)]) == 1
