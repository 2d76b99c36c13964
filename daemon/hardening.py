"""Process hardening shared by the daemon and its decoder workers: no core file, and no
same-user ptrace or /proc reads of its memory, so no seed it handled outlives its use in
a dump. Standard library only, loaded lazily: every command imports it (the umask)."""

from __future__ import annotations

import os

PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4

#: What files and folders tokenstation creates may be: its own user's only.
PRIVATE_UMASK = 0o077


def no_core_dumps() -> None:
    """RLIMIT_CORE 0 (soft and hard) and PR_SET_DUMPABLE 0 for this process."""
    import ctypes
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def dumpable() -> int:
    """This process's PR_GET_DUMPABLE (0: no core, no same-user ptrace or /proc reads)."""
    import ctypes

    return int(ctypes.CDLL(None).prctl(PR_GET_DUMPABLE, 0, 0, 0, 0))


def private_files() -> None:
    """Every file and folder created from now on is its owner's only (umask 077), so a
    file is private whatever the mode of the existing folder it lands in."""
    os.umask(PRIVATE_UMASK)
