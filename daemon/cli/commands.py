"""The table of commands: name -> (module that implements it, one-line summary).

`tokenstation --help` is drawn from this table alone; a command's module is imported only
when that command runs (or its own --help is asked for), so start-up stays cheap.
"""

from __future__ import annotations

COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("token_cmds", "read a token's serial, model and clock drift"),
    "sync": ("sync_cmd", "set a token's clock to the host's"),
    "burn": ("burn_cmd", "program a TOTP seed (and the clock) onto a token"),
    "profiles": (
        "molto2_cmds",
        "list the profiles of a Token2 Molto2 (title, seed, settings, account burned)",
    ),
    "delete": ("molto2_cmds", "delete the seed of one Molto2 profile (keeps its title)"),
    "molto2": (
        "molto2_cmds",
        "Molto2 device administration: change-key, factory-reset (confirmed on the device)",
    ),
    "daemon": ("daemon_cmds", "run the resident service (PC/SC monitor, drift check, D-Bus API)"),
    "status": ("readout_cmds", "what the running daemon sees"),
    "tokens": ("readout_cmds", "the token registry: drift history, rate and forecast"),
    "scan": (
        "scan",
        "decode and check QR images, otpauth text files and CSV batches (queues nothing)",
    ),
    "queue": (
        "queue_cmds",
        "the burn queue: list, add a file, generate seeds, burn, remove, retry, pause, resume",
    ),
    "store": (
        "store_cmds",
        "the databases: `store migrate` (schema), `store init-key` (seals shared seeds)",
    ),
    "export": (
        "export_cmds",
        "hand the seeds made here over: PSKC, Entra CSV/JSON, OATH CSV; --erase",
    ),
    "tray": ("tray_cmd", "show the station in the system tray and as desktop notifications"),
    "install-user-service": (
        "install_cmds",
        "run the daemon as a systemd user service and start the tray at login",
    ),
    "uninstall-user-service": ("install_cmds", "undo install-user-service"),
    "simulate": ("simulate", "run a simulated token in a vsmartcard vpcd reader slot"),
    "demo": (
        "demo",
        "see the station at work on simulated tokens (private pcscd and D-Bus)",
    ),
    "lab": (
        "lab",
        "a private station with simulated tokens to explore from another shell, until Ctrl-C",
    ),
}


def summary(name: str) -> str:
    """The one-line help of command ``name``."""
    return COMMANDS[name][1]


#: The commands whose plainest form is read without argparse (``cli/quick.py``), and the
#: module whose ``quick_args`` reads it.
QUICK = {"scan": "scan", "status": "readout_cmds"}

#: The command-line modules of the token families other than the single-profile one
#: (``token_cmds``, what is left), in the order the verbs ask them (``cli/families.py``).
FAMILY_MODULES = ("molto2_cmds",)
