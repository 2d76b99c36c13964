"""privacyIDEA's REST API for the push: ``/token/init``, then ``/token/`` to check it exists.

The one module that speaks HTTP (urllib from the standard library). The admin token goes
in the ``PI-Authorization`` header only; no message, log line or exception carries it or
the seed (a refusal is told by privacyIDEA's own error text, clipped).
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tokenstation.daemon.handover.record import BurnedToken
from tokenstation.daemon.safetext import clip
from tokenstation.daemon.token.problem import Problem, ProblemKind

TIMEOUT_S = 15.0


class PushProblem(Problem):
    """The server is away or refused (the message says which, never a secret)."""

    kind = ProblemKind.FAILED


class PrivacyIdeaClient:
    """Enrols burned tokens in one privacyIDEA server."""

    def __init__(self, url: str, api_token: str, *, realm: str = "", ca_file: Path | None = None):
        self.url = url.rstrip("/")
        self._token = api_token
        self.realm = realm
        self._tls = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)

    def __repr__(self) -> str:
        return f"PrivacyIdeaClient({self.url!r})"

    def push(self, r: BurnedToken) -> None:
        """Enrol ``r`` (TOTP, its seed in hex, digits, period, hash; its user in the realm
        when one is configured), then check that the server lists it."""
        fields = {
            "type": "totp",
            "serial": r.serial,
            "otpkey": r.hex(),
            "otpkeyformat": "hex",
            "genkey": "0",
            "otplen": str(r.digits),
            "timeStep": str(r.period),
            "hashlib": r.algorithm,
            "description": r.label,
        }
        if self.realm and r.upn:
            fields |= {"user": r.upn, "realm": self.realm}  # the login as the resolver has it
        self._call("POST", "/token/init", fields)
        listed = self._call("GET", "/token/?" + urllib.parse.urlencode({"serial": r.serial}))
        value = listed.get("result", {}).get("value", {})
        if not isinstance(value, dict) or int(value.get("count", 0)) != 1:
            raise PushProblem(f"{self.url} answered the enrolment but does not list {r.serial}")

    def _call(self, verb: str, path: str, fields: dict[str, str] | None = None) -> dict[str, Any]:
        body = urllib.parse.urlencode(fields).encode() if fields is not None else None
        req = urllib.request.Request(self.url + path, body, method=verb)
        req.add_header("PI-Authorization", self._token)
        if body is not None:
            req.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT_S, context=self._tls) as answer:
                data = json.loads(answer.read(1 << 20))
        except urllib.error.HTTPError as exc:
            raise PushProblem(f"{self.url} refused: {_error_text(exc)}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            why = getattr(exc, "reason", None) or type(exc).__name__
            raise PushProblem(f"{self.url} cannot be reached ({clip(str(why), 200)})") from None
        if not isinstance(data, dict) or not data.get("result", {}).get("status"):
            raise PushProblem(f"{self.url} refused: {_message(data)}")
        return data


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        data = json.loads(exc.read(1 << 16))
    except (OSError, ValueError):
        return f"HTTP {exc.code}"
    return f"HTTP {exc.code}: {_message(data)}"


def _message(data: Any) -> str:
    """privacyIDEA's error message, clipped (it never echoes the otpkey)."""
    try:
        return clip(str(data["result"]["error"]["message"]), 200)
    except (KeyError, TypeError):
        return "an answer without a status"
