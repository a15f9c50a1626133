"""The vault's encryption keys: parsed from ``VAULT_KEYS``, never stored, never printed.

``VAULT_KEYS`` is ``name:base64-of-32-bytes`` entries separated by commas. The first key encrypts
every new value; every listed key decrypts, so a new key can be put first on every host before the
old one is retired (``vault_rotate_keys``). Anything wrong with the setting makes every vault
operation fail closed with one line that names the problem and never the key material: the
readiness probe, ``manage.py check`` and the vault's errors all use the same line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from functools import lru_cache

from django.conf import settings

from .errors import VaultKeyError

KEY_BYTES = 32
#: Key names appear in stored values (``v1.<name>.…``), so no dots and nothing that needs quoting.
KEY_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class KeyRing:
    """The parsed keys; ``primary`` encrypts, all of ``names`` decrypt. Never shows key bytes."""

    primary: str
    names: tuple[str, ...]
    _material: dict[str, bytes] = field(repr=False, compare=False)

    def key(self, name: str) -> bytes:
        try:
            return self._material[name]
        except KeyError:
            raise VaultKeyError(
                f"A stored value uses the vault key {name!r}, which is not in VAULT_KEYS."
            ) from None

    @property
    def fingerprint(self) -> str:
        """A short one-way digest of the names and keys: tells "the keys changed since" (a token set
        flagged under a wrong key is tried again once they do) without saying anything of them."""
        digest = hashlib.sha256(b"linking_site vault keyring v1")
        for name in sorted(self._material):
            digest.update(name.encode() + b"\0" + self._material[name])
        return digest.hexdigest()[:16]

    def __repr__(self) -> str:
        return f"KeyRing(primary={self.primary!r}, names={self.names!r})"

    __str__ = __repr__


def _decode(value: str) -> bytes | None:
    """Standard or URL-safe base64, padding optional; None when it is neither."""
    text = value.strip()
    padded = text + "=" * (-len(text) % 4)
    for altchars in (None, b"-_"):
        try:
            return base64.b64decode(padded, altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            continue
    return None


def parse_keys(raw: str) -> KeyRing:
    """Parse a ``VAULT_KEYS`` value; raise ``VaultKeyError`` with one line (no key bytes) if bad."""
    if not raw or not raw.strip():
        raise VaultKeyError("VAULT_KEYS is not set: the vault cannot encrypt or decrypt tokens.")
    material: dict[str, bytes] = {}
    names: list[str] = []
    for position, entry in enumerate(raw.split(","), start=1):
        entry = entry.strip()
        if not entry:
            raise VaultKeyError(f"VAULT_KEYS entry {position} is empty (look for a stray comma).")
        name, sep, encoded = entry.partition(":")
        name = name.strip()
        if not sep or not encoded.strip():
            raise VaultKeyError(f"VAULT_KEYS entry {position} is not in the form name:base64-key.")
        if not KEY_NAME_RE.match(name):
            raise VaultKeyError(
                f"VAULT_KEYS entry {position} has an invalid name: use letters, digits, '-' or '_' "
                "(at most 64)."
            )
        if name in material:
            raise VaultKeyError(f"VAULT_KEYS lists the key name {name!r} twice.")
        key = _decode(encoded)
        if key is None:
            raise VaultKeyError(f"VAULT_KEYS key {name!r} is not valid base64.")
        if len(key) != KEY_BYTES:
            raise VaultKeyError(
                f"VAULT_KEYS key {name!r} decodes to {len(key)} bytes; AES-256 needs exactly {KEY_BYTES}."
            )
        material[name] = key
        names.append(name)
    return KeyRing(primary=names[0], names=tuple(names), _material=material)


@lru_cache(maxsize=4)
def _cached_keyring(raw: str) -> KeyRing:
    return parse_keys(raw)


def get_keyring() -> KeyRing:
    """The current keys (re-parsed whenever the setting's value changes, e.g. in tests)."""
    raw = getattr(settings, "VAULT_KEYS", "") or ""
    return _cached_keyring(raw)


def generate_key() -> str:
    """A new random key, base64-encoded, for a ``VAULT_KEYS`` entry (used by tooling, not stored)."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")
