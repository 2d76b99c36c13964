"""Where `burn` gets its secret: a file, standard input or a prompt, not the command line.

`--secret` and `--uri` still work, but whatever is in argv can be read by every local
user (ps, /proc/PID/cmdline) and stays in shell history, so they warn once. Nothing here
ever prints the secret or a piece of it.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from pathlib import Path
from typing import TypeVar

from tokenstation.daemon.cli.common import EXIT_USAGE, CliError, os_words, warn
from tokenstation.daemon.token.errors import InvalidInput
from tokenstation.daemon.token.secret import Secret

T = TypeVar("T")

#: More than any otpauth URI a token can take; a bigger file is not a secret file.
MAX_BYTES = 16 * 1024
#: How image files begin (PNG, JPEG, GIF, BMP, WebP's RIFF): a QR image given as a URI.
IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"RIFF")

_NO_SECRET_NEXT = (
    "Give it in a file with --secret-file FILE or --uri-file FILE (`-` reads standard "
    "input), or run it on a terminal to be asked; nothing was written."
)


def add_source_args(p: argparse.ArgumentParser) -> None:
    """--secret-file / --uri-file (and the argv forms, which warn)."""
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--secret-file",
        metavar="FILE",
        help="read the seed (Base32 or hex; hex:/base32: to force) from FILE, `-` for "
        "standard input",
    )
    src.add_argument(
        "--uri-file",
        metavar="FILE",
        help="read an otpauth://totp/... URI from FILE, `-` for standard input",
    )
    src.add_argument(
        "--secret",
        metavar="SECRET",
        help="the seed on the command line (warns: other local users can read it)",
    )
    src.add_argument(
        "--uri",
        metavar="URI",
        help="the URI on the command line (warns: other local users can read it)",
    )


def secret_source(args: argparse.Namespace) -> tuple[str, bool]:
    """(the text, whether it is an otpauth URI) from the flags, a file, stdin or a prompt."""
    if args.secret is not None or args.uri is not None:
        warn_argv("--secret" if args.secret is not None else "--uri")
        return (args.uri, True) if args.uri is not None else (args.secret, False)
    if args.uri_file is not None:
        return read_one(args.uri_file, "URI"), True
    if args.secret_file is not None:
        text = read_one(args.secret_file, "secret")
        if text.lower().startswith("otpauth"):
            raise CliError(
                f"{_shown(args.secret_file)} holds an otpauth:// URI, not a bare secret",
                EXIT_USAGE,
                f"Give it with --uri-file {args.secret_file} (its settings come with it); "
                "nothing was written.",
            )
        return text, False
    if not sys.stdin.isatty():
        raise CliError("no secret given", EXIT_USAGE, _NO_SECRET_NEXT)
    text = prompt("Secret (Base32 or hex) or otpauth:// URI, not shown: ")
    return text, text.lower().startswith("otpauth://")


def warn_argv(flag: str) -> None:
    """The one warning for a secret given on the command line as ``flag``."""
    warn(
        f"{flag} puts the secret on the command line, where other local users can read it "
        "(ps, /proc) and your shell history keeps it; next time use "
        f"{flag}-file FILE, {flag}-file - (standard input) or leave it out to be asked"
    )


def prompt(question: str) -> str:
    """Ask on the terminal without echo; an empty answer is bad input."""
    import getpass

    text = getpass.getpass(question).strip()
    if not text:
        raise CliError("nothing typed", EXIT_USAGE, "Nothing was written.")
    return text


def read_one(spec: str, what: str) -> str:
    """The one non-empty line of file ``spec`` (``-``: standard input)."""
    name = _shown(spec)
    data = sys.stdin.buffer.read(MAX_BYTES + 1) if spec == "-" else _read_file(Path(spec), what)
    if len(data) > MAX_BYTES:
        raise CliError(
            f"{name} holds more than {MAX_BYTES // 1024} KiB: not a {what} file",
            EXIT_USAGE,
            f"Give a file holding just the {what}; nothing was written.",
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        if data.startswith(IMAGE_MAGIC):
            raise CliError(
                f"{name} is an image, not a {what} in text",
                EXIT_USAGE,
                "Queue an enrolment QR image with `tokenstation queue add FILE` (or drop it "
                "in the drop folder), or read it with `tokenstation scan FILE`; nothing was "
                "written.",
            ) from None
        raise CliError(
            f"{name} is not UTF-8 text", EXIT_USAGE, f"Save the {what} as plain text."
        ) from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise CliError(
            f"{name} is empty", EXIT_USAGE, f"Put the {what} in it; nothing was written."
        )
    if len(lines) > 1:
        raise CliError(
            f"{name} holds {len(lines)} lines; one {what} was expected",
            EXIT_USAGE,
            f"Keep one {what} per file (queue several with `tokenstation queue add`); "
            "nothing was written.",
        )
    return lines[0]


def _read_file(path: Path, what: str) -> bytes:
    try:
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(path)
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise CliError(
            f"no such {what} file: {path}", EXIT_USAGE, "Check the name and the path."
        ) from None
    except OSError as exc:
        raise CliError(
            f"the {what} file {path} cannot be read ({os_words(exc)})",
            EXIT_USAGE,
            "Give a file you can read, or `-` for standard input.",
        ) from None
    text_like = not data.startswith(IMAGE_MAGIC)  # an image gets its own sentence instead
    mode = st.st_mode
    if text_like and stat.S_ISREG(mode) and mode & 0o077 and st.st_uid == os.getuid():
        warn(
            f"{path} can be read by other users (mode {stat.S_IMODE(st.st_mode):03o}); "
            f"`chmod 600 {path}`, and delete it once the token is burned"
        )
    return data


def _shown(spec: str) -> str:
    return "standard input" if spec == "-" else spec


def uri_states(uri: str) -> set[str]:
    """The parameters an otpauth URI states itself (lower case): a flag may contradict
    only these; one the URI leaves out takes the flag."""
    from urllib.parse import parse_qsl, urlsplit

    return {k.lower() for k, _v in parse_qsl(urlsplit(uri).query, keep_blank_values=True)}


def over_uri(flag: str, given: T | None, stated: bool, from_uri: T, shown: str) -> T:
    """The value for a setting the flag ``flag`` may give: the URI's when the flag is
    absent or agrees, the flag's when the URI does not state it; a flag against what the
    URI states is bad input (``shown``: the URI's value in words)."""
    if given is None or not given:
        return from_uri
    if stated and given != from_uri:
        raise InvalidInput(
            f"{flag} {given} contradicts the URI's {shown}",
            "Leave out the flag (the URI's value is used) or fix the URI; nothing was written.",
        )
    return given


def warn_weak(secret: Secret, who: str) -> None:
    """The one weak-secret warning (as `scan` and the drop folder say it)."""
    from tokenstation.daemon.intake.otpauth import weak_secret

    for text in weak_secret(secret, who):
        warn(text)
