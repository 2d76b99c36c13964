"""A running daemon on the command line: what it holds on a reader, and an account handed
to it for a burn (any family: the verbs and each family's module use these).

A command never drives a device the daemon holds: it asks first, waits while the daemon
is still reading a device placed a moment ago, and hands accounts over in a memory-only
file, never in a D-Bus message.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from tokenstation.daemon.cli.common import EXIT_REFUSED, CliError
from tokenstation.daemon.cli.daemon_link import DaemonAbsent, DaemonRefused, daemon_call

if TYPE_CHECKING:
    from tokenstation.daemon.bus.client import StationClient
    from tokenstation.daemon.token.secret import Secret
    from tokenstation.daemon.token.settings import HmacAlgorithm

#: The way back to driving a device directly.
STOP_DAEMON = (
    "stop the daemon first (`systemctl --user stop tokenstation`; a station: "
    "`sudo systemctl stop tokenstation-station`), run it, then start the daemon again"
)
#: How long a command waits for the daemon to finish reading a device just placed.
IDENTIFY_WAIT_S = 20.0
_POLL_S = 0.2


def daemon_presence(args: argparse.Namespace, reader: str) -> dict[str, Any] | None:
    """What a running daemon holds on ``reader`` (None: no daemon, or nothing it holds).

    A device the daemon is still identifying is waited for (never driven beside it); a
    card it found not to be a token, or could not read, is not held.
    """

    async def look(client: StationClient) -> dict[str, Any] | None:
        import asyncio
        import time

        deadline = time.monotonic() + IDENTIFY_WAIT_S
        while True:
            present = await client.present()
            found = next((p for p in present if p.get("reader") == reader), None)
            if found is None or found.get("state") in ("not-a-token", "error"):
                return None
            if "serial" in found and found.get("precise"):  # read as far as it goes
                return found
            if time.monotonic() > deadline:
                raise CliError(
                    f"the running daemon is still reading the device on {reader}",
                    EXIT_REFUSED,
                    "Run it again in a moment; nothing was sent.",
                )
            await asyncio.sleep(_POLL_S)

    try:
        found: dict[str, Any] | None = daemon_call(
            getattr(args, "bus", "session"), look, fallback=True
        )
    except DaemonAbsent:
        return None
    return found


def account_text(
    seed: Secret, label: str, hmac: HmacAlgorithm, period: int, digits: int = 6
) -> bytes:
    """The account as the one-line otpauth URI the daemon's intake reads (in memory only)."""
    import base64
    import secrets
    from urllib.parse import quote, urlencode

    query = urlencode(
        {
            "secret": base64.b32encode(seed.reveal()).decode().rstrip("="),
            "algorithm": hmac.name,
            "digits": digits,
            "period": period,
        }
    )
    # A comment line with a nonce: the intake takes the same bytes once, and a burn
    # that was refused (its job removed) may be asked for again.
    nonce = f"# tokenstation burn --profile {secrets.token_hex(8)}\n"
    return (nonce + f"otpauth://totp/{quote(label, safe=':@')}?{query}\n").encode()


def send_account(
    bus: str, text: bytes, serial: str, options: dict[str, Any], who: str
) -> dict[str, Any]:
    """BurnAccount with ``text`` in a memory-only file (never in a D-Bus message); a
    refusal's message starts with ``who`` (the device)."""
    import os

    fd = os.memfd_create("tokenstation-account", os.MFD_CLOEXEC)
    try:
        os.write(fd, text)
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            done: dict[str, Any] = daemon_call(
                bus, lambda c: c.burn_account(fd, "account.txt", serial, **options)
            )
        except DaemonRefused as exc:
            raise DaemonRefused(exc.kind, f"{who}: {exc}", exc.next_step) from None
    finally:
        os.close(fd)
    return done
