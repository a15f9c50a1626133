"""The agent key format: a fixed prefix, 256 bits of randomness and a checksum.

``lsa_`` + 43 base62 characters (32 random bytes) + 6 base62 characters of CRC32 over them. The
prefix lets secret scanners find leaked keys; the checksum lets the API refuse a mistyped or
made-up key without touching the database. Only a SHA-256 of the whole key is stored: the key is
random enough that a slow hash would add nothing.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import zlib

PREFIX = "lsa_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY_LENGTH = 43  # 62**43 > 2**256
_CHECKSUM_LENGTH = 6  # 62**6 > 2**32
KEY_LENGTH = len(PREFIX) + _BODY_LENGTH + _CHECKSUM_LENGTH
_KEY_RE = re.compile(rf"^{PREFIX}[0-9A-Za-z]{{{_BODY_LENGTH + _CHECKSUM_LENGTH}}}$")


def _base62(number: int, length: int) -> str:
    chars = []
    for _ in range(length):
        number, remainder = divmod(number, 62)
        chars.append(_ALPHABET[remainder])
    return "".join(reversed(chars))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), _CHECKSUM_LENGTH)


def new_key() -> str:
    body = _base62(secrets.randbits(256), _BODY_LENGTH)
    return f"{PREFIX}{body}{_checksum(body)}"


def is_well_formed(key: str) -> bool:
    """Prefix, length, alphabet and checksum all right: worth looking up at all."""
    if not isinstance(key, str) or len(key) != KEY_LENGTH or not _KEY_RE.match(key):
        return False
    body = key[len(PREFIX) : len(PREFIX) + _BODY_LENGTH]
    return secrets.compare_digest(key[-_CHECKSUM_LENGTH:], _checksum(body))


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def display_hint(key: str) -> str:
    """What a list may show of a key: its prefix and last four characters."""
    return f"{PREFIX}…{key[-4:]}"
