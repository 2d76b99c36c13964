"""`tokenstation install-user-service | uninstall-user-service` for pip and pipx users."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from tokenstation.daemon import units, xdg
from tokenstation.daemon.cli.commands import summary
from tokenstation.daemon.cli.common import EXIT_FAILED, CliError

MARKER = "# Written by `tokenstation install-user-service`; removed by uninstall-user-service.\n"


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register install-user-service and uninstall-user-service."""
    p = sub.add_parser(
        "install-user-service",
        help=summary("install-user-service"),
        description="Writes the systemd user unit, the D-Bus activation file, the tray's "
        "autostart entry, an application entry and icons into your XDG folders, pointing "
        "at this tokenstation executable, then enables and starts the service.",
    )
    p.add_argument("--no-enable", action="store_true", help="write the files only")
    p.set_defaults(func=cmd_install)
    p = sub.add_parser("uninstall-user-service", help=summary("uninstall-user-service"))
    p.set_defaults(func=cmd_uninstall)


def executable() -> str:
    """The command that runs this tokenstation."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "tokenstation" and argv0.exists():
        return str(argv0.resolve())
    found = shutil.which("tokenstation")
    if found:
        return str(Path(found).resolve())
    return f"{sys.executable} -m tokenstation.daemon"


def user_files(exe: str) -> list[tuple[Path, str]]:
    """(path, text) of every file install-user-service writes."""
    config = xdg.config_dir().parent
    data = xdg.data_dir().parent
    return [
        (config / "systemd/user/tokenstation.service", units.user_unit(exe)),
        (
            data / "dbus-1/services/org.tokenstation.TokenStation1.service",
            units.dbus_session_service(exe),
        ),
        (config / "autostart/tokenstation-tray.desktop", units.tray_autostart(exe)),
        (data / "applications/tokenstation.desktop", units.app_desktop(exe)),
    ]


def _systemctl(*args: str) -> tuple[bool, str]:
    tool = shutil.which("systemctl")
    if tool is None:
        return False, "systemctl is not installed"
    done = subprocess.run(
        [tool, "--user", *args], capture_output=True, text=True, timeout=30, check=False
    )
    if done.returncode != 0:
        return False, (done.stderr.strip().splitlines() or ["failed"])[-1]
    return True, ""


def cmd_install(args: argparse.Namespace) -> int:
    """Write the files, reload and enable."""
    exe = executable()
    for path, text in user_files(exe):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(MARKER + text)
        print(f"wrote {path}")
    icons = units.write_icons(xdg.data_dir().parent / "icons/hicolor")
    print(f"wrote {len(icons)} icons under {icons[0].parents[2]}")
    print(f"they run: {exe}")
    if args.no_enable:
        print("not enabled (--no-enable); later: systemctl --user enable --now tokenstation")
        return 0
    for step in (("daemon-reload",), ("enable", "--now", "tokenstation.service")):
        ok, why = _systemctl(*step)
        if not ok:
            raise CliError(
                f"the files are in place, but `systemctl --user {' '.join(step)}` failed: {why}",
                EXIT_FAILED,
                "Run it yourself in your desktop session (a user systemd instance is needed).",
            )
        print(f"ran systemctl --user {' '.join(step)}")
    print("The tray starts at your next login; start it now with `tokenstation tray &`.")
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    """Stop, disable and remove what install-user-service wrote (and nothing else)."""
    ok, why = _systemctl("disable", "--now", "tokenstation.service")
    print("ran systemctl --user disable --now tokenstation.service" if ok else f"systemctl: {why}")
    for path, _text in user_files(executable()):
        if path.exists() and path.read_text().startswith(MARKER):
            path.unlink()
            print(f"removed {path}")
        elif path.exists():
            print(f"left {path}: not written by install-user-service")
    for size in units.ICON_SIZES:
        icon = xdg.data_dir().parent / f"icons/hicolor/{size}x{size}/apps/tokenstation.png"
        icon.unlink(missing_ok=True)
    print("removed the icons")
    if ok:
        _systemctl("daemon-reload")
    return 0
