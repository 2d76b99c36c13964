"""The files that install tokenstation into a desktop session or a station.

One source for both ways in: the Debian package ships them with ``/usr/bin/tokenstation``
(``packaging/`` holds that rendering; ``python -m tokenstation.daemon.units packaging``
rewrites it, and a test keeps it in step), and ``tokenstation install-user-service``
writes the user's own copies pointing at the executable it runs from.
"""

from __future__ import annotations

import shlex
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tokenstation.daemon.bus.names import BUS_NAME

PACKAGED_EXEC = "/usr/bin/tokenstation"
ICON_SIZES = (16, 22, 24, 32, 48, 64, 128, 256)


@dataclass(frozen=True)
class UnitFile:
    """A file to install: where (relative to a prefix) and what."""

    path: str
    text: str


def user_unit(exe: str) -> str:
    """The daemon as a systemd user service on the session bus."""
    return f"""[Unit]
Description=tokenstation: checks, re-syncs and burns TOTP hardware tokens
Documentation=file:///usr/share/doc/tokenstation/README.md
After=dbus.socket
Requires=dbus.socket

[Service]
Type=dbus
BusName={BUS_NAME}
ExecStart={exe} daemon
Restart=on-failure
RestartSec=3
UMask=0077
LimitCORE=0

[Install]
WantedBy=default.target
"""


def system_unit(exe: str) -> str:
    """An unattended station: the daemon on the system bus as the tokenstation user."""
    return f"""[Unit]
Description=tokenstation provisioning station (system bus)
Documentation=file:///usr/share/doc/tokenstation/README.md
After=dbus.service pcscd.socket
Wants=pcscd.socket

[Service]
Type=dbus
BusName={BUS_NAME}
User=tokenstation
Group=tokenstation
ExecStart={exe} daemon --bus system --config /etc/tokenstation/config.toml
Environment=XDG_STATE_HOME=/var/lib/tokenstation/state
Environment=XDG_DATA_HOME=/var/lib/tokenstation/data
Environment=XDG_CACHE_HOME=/var/cache/tokenstation
StateDirectory=tokenstation
StateDirectoryMode=0700
CacheDirectory=tokenstation
CacheDirectoryMode=0700
Restart=on-failure
RestartSec=3
UMask=0077
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
# AF_UNIX: pcscd, the system bus; AF_INET/AF_INET6: a shared PostgreSQL ([store] url).
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
RemoveIPC=yes
ProtectProc=invisible
LockPersonality=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
CapabilityBoundingSet=
# No seed in a core dump (the daemon also sets RLIMIT_CORE 0 and PR_SET_DUMPABLE 0).
LimitCORE=0

[Install]
WantedBy=multi-user.target
"""


def sysusers() -> str:
    """systemd-sysusers: the tokenstation system user and group."""
    return (
        "# The station daemon's user; members of the group may write to tokens over D-Bus.\n"
        'u tokenstation - "tokenstation provisioning station" /var/lib/tokenstation\n'
    )


def dbus_session_service(exe: str) -> str:
    """D-Bus activation on the session bus (hands over to the systemd user unit)."""
    return f"""[D-BUS Service]
Name={BUS_NAME}
Exec={exe} daemon
SystemdService=tokenstation.service
"""


def tray_autostart(exe: str) -> str:
    """XDG autostart: the tray, hidden in the tray area at login."""
    return f"""[Desktop Entry]
Type=Application
Name=tokenstation tray
GenericName=TOTP token station
Comment=Shows TOTP hardware tokens placed on the reader, their clock drift and the burn queue
Exec={exe} tray
Icon=tokenstation
Terminal=false
NoDisplay=true
Categories=System;Security;
X-GNOME-Autostart-enabled=true
"""


def desktop_exec(entry: str) -> list[str]:
    """The command line of a desktop entry's Exec key (the entries here use no field codes)."""
    line = next(ln for ln in entry.splitlines() if ln.startswith("Exec="))
    return shlex.split(line.removeprefix("Exec="))


def app_desktop(exe: str) -> str:
    """The application entry (menus, notification desktop-entry hint)."""
    return f"""[Desktop Entry]
Type=Application
Name=tokenstation
GenericName=TOTP token station
Comment=Burn and re-sync NFC-programmable TOTP hardware tokens
Exec={exe} tray
Icon=tokenstation
Terminal=false
Categories=System;Security;
Keywords=TOTP;OTP;token;NFC;PC/SC;2FA;
StartupNotify=false
"""


def polkit_rule() -> str:
    """Lets the station user use pcscd where pcscd is built to ask polkit."""
    return """// tokenstation station: let the tokenstation system user (no session) use pcscd
// where pcscd is built with polkit (see "Enabled features" in `pcscd -v`).
// Packaged as /usr/share/polkit-1/rules.d/50-tokenstation-pcscd.rules.
polkit.addRule(function(action, subject) {
    if ((action.id == "org.debian.pcsc-lite.access_pcsc" ||
         action.id == "org.debian.pcsc-lite.access_card") &&
        subject.user == "tokenstation") {
        return polkit.Result.YES;
    }
});
"""


def packaged_files(exe: str = PACKAGED_EXEC) -> list[UnitFile]:
    """Everything under packaging/ that is generated, by its place in that folder."""
    return [
        UnitFile("systemd/user/tokenstation.service", user_unit(exe)),
        UnitFile("systemd/system/tokenstation-station.service", system_unit(exe)),
        UnitFile("systemd/sysusers.d/tokenstation.conf", sysusers()),
        UnitFile("dbus/org.tokenstation.TokenStation1.service", dbus_session_service(exe)),
        UnitFile("xdg/tokenstation-tray.desktop", tray_autostart(exe)),
        UnitFile("xdg/tokenstation.desktop", app_desktop(exe)),
        UnitFile("polkit/50-tokenstation-pcscd.rules", polkit_rule()),
    ]


def write_icons(folder: Path) -> list[Path]:
    """hicolor icons (the idle tray picture) under ``folder``/NxN/apps/tokenstation.png."""
    from tokenstation.tray import icons
    from tokenstation.tray.model import TrayState

    out = []
    for size in ICON_SIZES:
        path = folder / f"{size}x{size}" / "apps" / "tokenstation.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        icons.draw(TrayState.OK, size).save(path)
        out.append(path)
    return out


#: Where write_icons puts the icons inside packaging/ (installed as /usr/share/icons/hicolor).
PACKAGED_ICONS = "icons/hicolor"


def differences(folder: Path) -> list[str]:
    """The packaged files under ``folder`` that are missing or differ from what is generated.

    Icons are compared by their pixels, not their bytes (the PNG encoder may vary).
    """
    from PIL import Image

    stale = [
        f.path
        for f in packaged_files()
        if not (folder / f.path).is_file() or (folder / f.path).read_text() != f.text
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for fresh in write_icons(Path(tmp)):
            rel = f"{PACKAGED_ICONS}/{fresh.relative_to(tmp)}"
            try:
                with Image.open(folder / rel) as old, Image.open(fresh) as new:
                    same = old.mode == new.mode and old.tobytes() == new.tobytes()
            except OSError:
                same = False
            if not same:
                stale.append(rel)
    return stale


def main(argv: list[str]) -> int:
    """python -m tokenstation.daemon.units [--check] FOLDER: render the packaged files
    (units, D-Bus files, desktop entries, polkit rule, icons) into FOLDER, or with
    --check list those in FOLDER that are out of date (exit 1)."""
    check = "--check" in argv
    args = [a for a in argv if a != "--check"]
    target = Path(args[0]) if args else Path("packaging")
    if check:
        stale = differences(target)
        for rel in stale:
            print(f"{target / rel} differs from what tokenstation generates", file=sys.stderr)
        if stale:
            print(f"run: python -m tokenstation.daemon.units {target}", file=sys.stderr)
        return 1 if stale else 0
    for f in packaged_files():
        path = target / f.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f.text)
        print(path)
    for path in write_icons(target / PACKAGED_ICONS):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
