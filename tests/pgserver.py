"""A private PostgreSQL server for tests, benchmarks and trials: Debian's ``postgresql``.

``initdb`` into a temporary directory, ``postgres`` listening on no TCP port at all,
only on a Unix socket in that directory, with fsync off (throw-away data, fast start).
PostgreSQL refuses to run as root, so under root the cluster belongs to ``nobody``
(its directory is made for it); as any other user it runs as that user. Stopped (fast
shutdown) and removed by :meth:`PgServer.stop`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

SUPERUSER = "tokenstation"


class PgUnavailable(RuntimeError):
    """The PostgreSQL server programs are not installed, or the server did not start."""


def bin_dir() -> Path | None:
    """Where initdb and postgres are (Debian keeps them out of PATH), or None."""
    found = shutil.which("initdb")
    if found:
        real = Path(os.path.realpath(found)).parent
        if (real / "postgres").exists():
            return real
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "postgres").exists():
            return Path(candidate)
    return None


class PgServer:
    """One throw-away cluster; :meth:`new_database` gives each user a database of its own."""

    def __init__(self) -> None:
        binaries = bin_dir()
        if binaries is None:
            raise PgUnavailable("PostgreSQL is not installed (apt-get install postgresql)")
        self.bin = binaries
        self.root = Path(tempfile.mkdtemp(prefix="tokenstation-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root  # the socket file: .s.PGSQL.5432 in it
        self.process: subprocess.Popen[bytes] | None = None
        self._as: list[str] = []
        self._paused: list[int] = []
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.root, nobody.pw_uid, nobody.pw_gid)
            self._as = [
                "setpriv",
                f"--reuid={nobody.pw_uid}",
                f"--regid={nobody.pw_gid}",
                "--clear-groups",
            ]
        os.chmod(self.root, 0o711 if self._as else 0o700)

    def start(self) -> PgServer:
        """initdb and start the server; returns when it accepts connections."""
        env = {**os.environ, "LC_ALL": "C.UTF-8", "TZ": "UTC"}
        for name in [k for k in env if k.startswith("PG")]:
            del env[name]
        if not self.data.exists():
            self._initdb(env)
        self._run_server(env)
        return self

    def _initdb(self, env: dict[str, str]) -> None:
        init = subprocess.run(
            [
                *self._as,
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
            capture_output=True,
            env=env,
            timeout=120,
            check=False,
        )
        if init.returncode != 0:
            raise PgUnavailable(f"initdb failed: {init.stderr.decode(errors='replace')[-500:]}")

    def _run_server(self, env: dict[str, str]) -> None:
        self.log = self.root / "server.log"
        log = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.process = subprocess.Popen(
            [
                *self._as,
                str(self.bin / "postgres"),
                "-D",
                str(self.data),
                "-k",
                str(self.socket_dir),
                "-c",
                "listen_addresses=",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=60",
                "-c",
                "shared_buffers=16MB",
            ],
            stdout=log,
            stderr=log,
            env=env,
        )
        os.close(log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PgUnavailable(f"postgres exited: {self.log.read_text()[-500:]}")
            ready = subprocess.run(
                [str(self.bin / "pg_isready"), "-q", "-h", str(self.socket_dir)],
                env=env,
                check=False,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        self.stop()
        raise PgUnavailable("postgres did not accept connections within 60 s")

    def pause(self) -> None:
        """SIGSTOP the server and its backends: as a hung server, or one the network cut
        off, looks to its clients (connections neither answered nor closed)."""
        assert self.process is not None and not self._paused
        self._paused = [self.process.pid, *_children(self.process.pid)]
        for pid in self._paused:
            os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT what :meth:`pause` stopped (the backends first)."""
        paused, self._paused = self._paused, []
        for pid in reversed(paused):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def halt(self) -> None:
        """Stop the server (fast shutdown), keeping its data: :meth:`start` brings it back.
        A paused server shuts down as it resumes, without answering anyone first."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(2)  # SIGINT: fast shutdown, clients disconnected
            self.resume()
            self.process.wait(timeout=30)
        self.process = None

    def url(self, dbname: str = "postgres") -> str:
        """A libpq URL for ``dbname`` over the private socket."""
        return f"postgresql://{SUPERUSER}@/{dbname}?host={self.socket_dir}"

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run SQL with psql; its output."""
        out = subprocess.run(
            [
                str(self.bin / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(self.socket_dir),
                "-U",
                SUPERUSER,
                "-d",
                dbname,
                "-c",
                sql,
            ],
            capture_output=True,
            timeout=60,
            check=True,
        )
        return out.stdout.decode()

    def new_database(self, prefix: str = "t") -> str:
        """Create an empty database; its URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.psql(f"CREATE DATABASE {name}")
        return self.url(name)

    def dump(self, url: str) -> bytes:
        """pg_dump of the database at ``url`` (plain SQL)."""
        dbname = url.split("?", 1)[0].rsplit("/", 1)[1]
        out = subprocess.run(
            [
                str(self.bin / "pg_dump"),
                "-h",
                str(self.socket_dir),
                "-U",
                SUPERUSER,
                dbname,
            ],
            capture_output=True,
            timeout=60,
            check=True,
        )
        return out.stdout

    def stop(self) -> None:
        """Fast shutdown, then remove the cluster."""
        try:
            self.halt()
        except subprocess.TimeoutExpired:
            if self.process is not None:
                self.process.kill()
                self.process.wait()
        self.process = None
        shutil.rmtree(self.root, ignore_errors=True)


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
    return out
