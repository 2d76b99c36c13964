"""SM4 authentication, CBC-MAC and seed framing (token-protocol.md section 3).

SM4 itself comes from ``cryptography`` (OpenSSL); nothing here hand-writes a cipher.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tokenstation.daemon.token.errors import InvalidInput
from tokenstation.daemon.token.limits import MAX_SEED_BYTES
from tokenstation.daemon.token.secret import Secret

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers import Cipher

BLOCK = 16
MAC_LENGTH = 4
CHALLENGE_LENGTH = 8

#: The public single-profile Token2 key (token-protocol.md 3.1), the same on every device.
TOKEN2_KEY = bytes.fromhex("8AD206883CA369482AB27182B6E83224")


def _sm4(key: bytes, *, cbc: bool = False) -> Cipher[Any]:
    """An SM4 cipher object from ``cryptography`` (ECB, or CBC with a zero IV).

    Imported on first use, so processes that never talk to a token (the tray, `scan`)
    do not load OpenSSL.
    """
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    mode: modes.Mode = modes.CBC(bytes(BLOCK)) if cbc else modes.ECB()
    return Cipher(algorithms.SM4(key), mode)


def _check_key(key: bytes) -> None:
    if len(key) != BLOCK:
        raise ValueError(f"an SM4 key is 16 bytes, got {len(key)}")


def sm4_ecb_encrypt(key: bytes, data: bytes) -> bytes:
    """SM4-ECB over whole blocks."""
    _check_key(key)
    if len(data) % BLOCK:
        raise ValueError("SM4-ECB input must be a whole number of 16-byte blocks")
    enc = _sm4(key).encryptor()
    return enc.update(data) + enc.finalize()


def sm4_ecb_decrypt(key: bytes, data: bytes) -> bytes:
    """SM4-ECB decryption over whole blocks."""
    _check_key(key)
    if len(data) % BLOCK:
        raise ValueError("SM4-ECB input must be a whole number of 16-byte blocks")
    dec = _sm4(key).decryptor()
    return dec.update(data) + dec.finalize()


def pad_method2(data: bytes) -> bytes:
    """ISO/IEC 9797-1 padding method 2, always applied: 80 then 00s to a block multiple.

    A block-aligned input gets a whole extra block (token-protocol.md 4.2).
    """
    padded = data + b"\x80"
    return padded + bytes(-len(padded) % BLOCK)


def unpad_method2(data: bytes) -> bytes | None:
    """Strip method-2 padding; None when there is no 80 marker after the trailing zeros."""
    stripped = data.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80:
        return None
    return stripped[:-1]


def auth_response(key: bytes, challenge: bytes) -> bytes:
    """The 16-byte answer to an 8-byte challenge: SM4_K(R || 00*8) (section 3.2)."""
    if len(challenge) != CHALLENGE_LENGTH:
        raise ValueError(f"a challenge is 8 bytes, got {len(challenge)}")
    return sm4_ecb_encrypt(key, challenge + bytes(CHALLENGE_LENGTH))


def cbc_mac(key: bytes, message: bytes) -> bytes:
    """ISO 9797-1 MAC algorithm 1 with SM4, 4-byte tag (section 3.3).

    Like the Token2 reference, an already block-aligned message is not padded; no real
    command is aligned (5 + 16k or 24 bytes), so both conventions agree on the wire.
    """
    _check_key(key)
    padded = message if len(message) % BLOCK == 0 else pad_method2(message)
    enc = _sm4(key, cbc=True).encryptor()
    out = enc.update(padded) + enc.finalize()
    return out[-BLOCK : -BLOCK + MAC_LENGTH]


def mac_input(ins: int, p1: int, p2: int, body: bytes) -> bytes:
    """What the MAC covers: 80 INS P1 P2 Lc' body, with CLA 80 and Lc' without the MAC."""
    return bytes((0x80, ins, p1, p2, len(body))) + body


def check_seed(seed: Secret) -> None:
    """Refuse a seed the token cannot hold (1..63 bytes)."""
    if not 1 <= len(seed) <= MAX_SEED_BYTES:
        raise InvalidInput(
            f"the seed is {len(seed)} bytes; these tokens hold 1 to {MAX_SEED_BYTES} bytes "
            f"(fingerprint {seed.fingerprint})"
        )


def encrypt_seed(key: bytes, seed: Secret) -> bytes:
    """SM4-ECB of the method-2-padded seed: 16, 32, 48 or 64 bytes of ciphertext."""
    check_seed(seed)
    return sm4_ecb_encrypt(key, pad_method2(seed.reveal()))


def decrypt_seed(key: bytes, ciphertext: bytes) -> Secret | None:
    """Decrypt and unpad a seed write; None when the framing is wrong (as a token rejects it)."""
    if len(ciphertext) not in (16, 32, 48, 64):
        return None
    plain = unpad_method2(sm4_ecb_decrypt(key, ciphertext))
    if plain is None or not plain:
        return None
    return Secret(plain)


def aes_gcm_seal(key: bytes, nonce: bytes, plain: bytes, associated: bytes) -> bytes:
    """AES-256-GCM encryption (ciphertext with its 16-byte tag), from ``cryptography``."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(key).encrypt(nonce, plain, associated)


def aes_gcm_open(key: bytes, nonce: bytes, sealed: bytes, associated: bytes) -> bytes | None:
    """The plaintext of :func:`aes_gcm_seal`'s output, or None when the tag does not match
    (another key, other associated data, or altered bytes)."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        return AESGCM(key).decrypt(nonce, sealed, associated)
    except InvalidTag:
        return None
