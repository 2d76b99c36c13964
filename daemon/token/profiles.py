"""A multi-profile token's profiles: one profile's public data, by a family-neutral name.

The only multi-profile token so far is the Molto2 (token-protocol.md section 6); the
presence and the views hold its profiles by this name, so they need not name it.
"""

from tokenstation.daemon.token.molto2 import ProfileInfo as ProfileInfo  # noqa: PLC0414

__all__ = ["ProfileInfo"]
