"""A real privacyIDEA 3.14 for tests: its own venv under build/, SQLite, loopback only.

Installed on first use from PyPI (``privacyidea==3.14`` and the hashed requirements its
wheel ships in ``lib/privacyidea/requirements.txt``), set up with ``pi-manage`` and run
with ``pi-manage run`` on 127.0.0.1 and a free port. AGPL: used as an outside peer only.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / "build" / "pi-venv"
VERSION = "3.14"
ADMIN, PASSWORD = "admin", "test-admin-pw"


class PrivacyIdeaUnavailable(Exception):
    """privacyIDEA could not be installed or started here."""


def install() -> Path:
    """The venv's pi-manage, installing privacyIDEA into it first if needed."""
    pi_manage = VENV / "bin" / "pi-manage"
    ready = VENV / ".tokenstation-ready"
    if ready.exists() and pi_manage.exists():
        return pi_manage
    log = ROOT / "build" / "pi-install.log"
    log.parent.mkdir(exist_ok=True)
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(VENV)],
        [str(VENV / "bin" / "pip"), "install", "-q", f"privacyidea=={VERSION}"],
        [
            str(VENV / "bin" / "pip"),
            "install",
            "-q",
            "-r",
            str(VENV / "lib" / "privacyidea" / "requirements.txt"),
        ],
    ]
    with log.open("w") as out:
        for cmd in steps:
            if subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False).returncode:
                raise PrivacyIdeaUnavailable(f"{' '.join(cmd[:4])} failed; see {log}")
    ready.touch()
    return pi_manage


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivacyIdea:
    """One privacyIDEA server in ``home`` (its SQLite, keys and log there)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._token = ""

    def start(self) -> PrivacyIdea:
        pi_manage = install()
        self.home.mkdir(parents=True, exist_ok=True)
        cfg = self.home / "pi.cfg"
        h = self.home
        cfg.write_text(
            f"SQLALCHEMY_DATABASE_URI = 'sqlite:///{h}/pi.sqlite'\n"
            f"SECRET_KEY = '{secrets.token_hex(16)}'\nPI_PEPPER = '{secrets.token_hex(16)}'\n"
            f"PI_ENCFILE = '{h}/enckey'\nPI_AUDIT_KEY_PRIVATE = '{h}/private.pem'\n"
            f"PI_AUDIT_KEY_PUBLIC = '{h}/public.pem'\nPI_AUDIT_SQL_TRUNCATE = True\n"
            f"PI_LOGFILE = '{h}/privacyidea.log'\n"
        )
        env = {**os.environ, "PRIVACYIDEA_CONFIGFILE": str(cfg)}
        log = (self.home / "pi-manage.log").open("ab")
        for args in (
            ["setup", "create_enckey"],
            ["setup", "create_audit_keys"],
            ["setup", "create_tables"],
            ["admin", "add", ADMIN, "-p", PASSWORD],
        ):
            done = subprocess.run(
                [str(pi_manage), *args], env=env, cwd=h, stdout=log, stderr=log, check=False
            )
            if done.returncode:
                raise PrivacyIdeaUnavailable(f"pi-manage {' '.join(args[:2])} failed")
        self.proc = subprocess.Popen(
            [str(pi_manage), "run", "-h", "127.0.0.1", "-p", str(self.port), "--no-reload"],
            env=env,
            cwd=h,  # privacyIDEA logs to ./privacyidea.log before it reads PI_LOGFILE
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise PrivacyIdeaUnavailable("pi-manage run exited; see pi-manage.log")
            try:
                self._token = self.post(
                    "/auth", {"username": ADMIN, "password": PASSWORD}, auth=False
                )["result"]["value"]["token"]
                return self
            except OSError:
                time.sleep(0.3)
        raise PrivacyIdeaUnavailable("privacyIDEA did not answer within 60 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def admin_token(self) -> str:
        """A JWT for the admin (what `PI-Authorization` carries)."""
        return self._token

    def post(
        self,
        path: str,
        fields: dict[str, str],
        *,
        auth: bool = True,
        file: tuple[str, bytes] | None = None,
    ) -> Any:
        """POST form fields (multipart when a file goes along); the JSON answer, even an error's."""
        headers = {"PI-Authorization": self._token} if auth else {}
        if file is None:
            body = urllib.parse.urlencode(fields).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            boundary = secrets.token_hex(12)
            head = f"--{boundary}\r\nContent-Disposition: form-data; name="
            parts = [f'{head}"{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()]
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                f'filename="{file[0]}"\r\nContent-Type: application/xml\r\n\r\n'.encode()
                + file[1]
                + b"\r\n"
            )
            body = b"".join(parts) + f"--{boundary}--\r\n".encode()
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        request = urllib.request.Request(self.url + path, body, headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return json.loads(exc.read() or b"{}")

    def validate(self, serial: str, code: str) -> bool:
        """/validate/check: True for ACCEPT."""
        answer = self.post("/validate/check", {"serial": serial, "pass": code}, auth=False)
        return bool(answer["result"].get("value"))
