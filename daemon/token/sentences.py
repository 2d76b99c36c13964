"""Sentences joined into one line: each part ends with exactly one full stop.

Messages are built from parts (what happened, why, what to do) written in different
places; some parts end with a full stop and some do not. Every place that joins them
(the CLI, D-Bus replies, token errors, the tray) uses :func:`join_sentences`, so that a
line never reads "token.. Give". It imports nothing, so that every layer may use it.
"""

from __future__ import annotations

_ENDS = (".", "!", "?")


def end_sentence(text: str) -> str:
    """``text`` stripped, ending with one full stop (or its own ! or ?); "" stays ""."""
    text = text.strip()
    while text.endswith(".."):
        text = text[:-1]
    return text if not text or text.endswith(_ENDS) else text + "."


def join_sentences(*parts: str) -> str:
    """The non-empty ``parts`` as sentences on one line, one space between them."""
    return " ".join(s for s in (end_sentence(p) for p in parts) if s)
