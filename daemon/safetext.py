"""Text from outside shown safely: file names escaped, long strings clipped.

A file name is any byte string the file system allows. Python hands it over as a
``str`` with surrogates for bytes that are not UTF-8 (``surrogateescape``); such a
string cannot be stored in SQLite, sent over D-Bus or written as UTF-8. ``shown_name``
turns it into printable text (``bad\\xff.txt``) that goes everywhere a name is shown or
recorded; the file system operations keep the real name.
"""

from __future__ import annotations

#: Longest text taken from outside that is repeated in a message, reason or signal.
DEFAULT_CLIP = 200


def utf8_safe(text: str) -> str:
    """``text`` as valid UTF-8 text: surrogates (undecodable bytes) shown as ``\\xff``."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # surrogates that did not come from the file system
        raw = text.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace")


def shown_name(name: str) -> str:
    """``name`` as printable text: bytes that are not UTF-8 and control characters escaped."""
    text = utf8_safe(name)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def clip(text: str, limit: int = DEFAULT_CLIP) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was when it was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def describe_length(text: str) -> str:
    """Only the length of a value that must not be echoed (it may be a secret)."""
    return f"{len(text)} character{'s' if len(text) != 1 else ''}"
