"""A private PC/SC stack: pcscd with vsmartcard's vpcd driver, no systemd, own socket.

pcscd hard-codes /run/pcscd, so it runs in a private mount namespace with a temporary
directory bound over that path; clients reach it through ``PCSCLITE_CSOCK_NAME``
(read by libpcsclite at the first PC/SC call of a process). Each vpcd reader slot
listens on its own TCP port; the virtual card connects to it. Used by the tests, the
benchmarks and ``tokenstation demo``. Needs root or unprivileged user namespaces.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
SLOTS_PER_DRIVER = 2


class StackUnavailable(RuntimeError):
    """pcscd or the vpcd driver is missing, or the namespace cannot be made."""


def missing_parts() -> list[str]:
    """What is not installed for a private stack (empty when all is there)."""
    missing = []
    if shutil.which("pcscd") is None:
        missing.append("pcscd (apt-get install pcscd)")
    if not VPCD_DRIVER.exists():
        missing.append("the vpcd driver (apt-get install vsmartcard-vpcd)")
    if shutil.which("unshare") is None:
        missing.append("unshare (util-linux)")
    return missing


@functools.cache
def _pcscd_has_polkit_switch() -> bool:
    """Whether this pcscd takes --disable-polkit (pcsc-lite >= 2.0.1)."""
    try:
        usage = subprocess.run(
            ["pcscd", "--help"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--disable-polkit" in usage.stdout + usage.stderr


def free_port_block(count: int) -> int:
    """A base port with ``count`` consecutive free TCP ports on all interfaces."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base + count > 65535:
            continue
        socks = []
        try:
            for p in range(base, base + count):
                s = socket.socket()
                socks.append(s)
                s.bind(("0.0.0.0", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise StackUnavailable("no block of free TCP ports found")


@dataclass
class PcscStack:
    """A running private pcscd with ``drivers`` vpcd entries (two reader slots each)."""

    readers: int = 2
    workdir: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="tokenstation-pcsc-"))
    )
    base_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    debug: bool = False

    @property
    def socket_path(self) -> Path:
        """The pcscd socket clients must use (PCSCLITE_CSOCK_NAME)."""
        return self.workdir / "run" / "pcscd.comm"

    @property
    def log_path(self) -> Path:
        """pcscd's own output."""
        return self.workdir / "pcscd.log"

    def port(self, slot: int) -> int:
        """The vpcd TCP port of reader slot ``slot`` (0-based)."""
        return self.base_port + slot

    def reader_name(self, slot: int) -> str:
        """The PC/SC name pcscd gives slot ``slot``."""
        driver, sub = divmod(slot, SLOTS_PER_DRIVER)
        name = "Virtual PCD" if driver == 0 else f"Virtual PCD {driver}"
        return f"{name} 00 {sub:02X}"

    def env(self) -> dict[str, str]:
        """An environment for client processes."""
        return {**os.environ, "PCSCLITE_CSOCK_NAME": str(self.socket_path)}

    def write_config(self) -> Path:
        """reader.conf.d with one vpcd entry per two slots (driver copies: see below)."""
        conf = self.workdir / "reader.conf.d"
        conf.mkdir(parents=True, exist_ok=True)
        for old in conf.iterdir():
            old.unlink()
        drivers = (self.readers + SLOTS_PER_DRIVER - 1) // SLOTS_PER_DRIVER
        for d in range(drivers):
            lib = VPCD_DRIVER
            if d > 0:
                # Two entries on one .so share its global slot state; a copy loads apart.
                lib = self.workdir / f"libifdvpcd-{d}.so"
                shutil.copyfile(VPCD_DRIVER.resolve(), lib)
            name = "Virtual PCD" if d == 0 else f"Virtual PCD {d}"
            port = self.base_port + d * SLOTS_PER_DRIVER
            (conf / f"vpcd{d}").write_text(
                f'FRIENDLYNAME "{name}"\nDEVICENAME /dev/null:0x{port:X}\n'
                f"LIBPATH {lib}\nCHANNELID 0x{port:X}\n"
            )
        return conf

    def start(self, timeout: float = 10.0) -> PcscStack:
        """Start pcscd and wait for its socket."""
        missing = missing_parts()
        if missing:
            raise StackUnavailable("missing: " + ", ".join(missing))
        if not self.base_port:
            drivers = (self.readers + 1) // SLOTS_PER_DRIVER
            self.base_port = free_port_block(drivers * SLOTS_PER_DRIVER)
        conf = self.write_config()
        run = self.workdir / "run"
        run.mkdir(parents=True, exist_ok=True)
        if self.socket_path.exists():
            self.socket_path.unlink()
        if os.geteuid() == 0:
            os.makedirs("/run/pcscd", exist_ok=True)
            ns = ["unshare", "-m"]
        else:
            ns = ["unshare", "-Urm"]
        flags = "--foreground --debug --apdu" if self.debug else "--foreground"
        if _pcscd_has_polkit_switch():
            # This pcscd serves only our own processes on a private socket; with polkit
            # (pcsc-lite 2, Debian 13) it would ask a polkitd that may not run: denied.
            flags += " --disable-polkit"
        script = f"mount --bind '{run}' /run/pcscd && exec pcscd {flags} --config '{conf}'"
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen([*ns, "sh", "-c", script], stdout=out, stderr=out)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.socket_path.exists():
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        log = self.log_path.read_text(errors="replace")[-2000:]
        self.stop()
        raise StackUnavailable(f"pcscd did not start:\n{log}")

    def stop(self) -> None:
        """SIGTERM pcscd and wait for it."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def restart(self, readers: int | None = None) -> None:
        """Stop and start again (optionally with another number of readers)."""
        self.stop()
        if readers is not None:
            self.readers = readers
        self.start()

    def cleanup(self) -> None:
        """Stop and remove the work directory."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> PcscStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
