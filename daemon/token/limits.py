"""What a single-profile token holds, as plain numbers.

A module of constants with no imports: the drop folder's checks and `tokenstation scan`
read them without loading the token layer (its dataclasses and enums) or pyotp.
"""

from __future__ import annotations

#: The longest seed these tokens hold, in bytes.
MAX_SEED_BYTES = 63
#: NIST SP 800-63B's minimum seed length in bits (pyotp >= 2.12 enforces it); the tokens
#: take shorter seeds, so a shorter one is a warning, not a refusal.
RECOMMENDED_MIN_BITS = 112
#: The TOTP time steps these tokens take, in seconds.
PERIODS = (30, 60)
