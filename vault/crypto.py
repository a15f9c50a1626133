"""Authenticated encryption of single token values (AES-256-GCM).

Stored form: ``v1.<key name>.<nonce>.<ciphertext and tag>`` (both base64url, unpadded). The key
name says which ``VAULT_KEYS`` entry decrypts it, so keys rotate value by value. Each value is bound
by GCM's associated data to where it lives: the token set row, the field, and the owner (user id,
provider, uid). A value copied to another row, another field or another owner fails to verify, and
a value that fails to verify raises; garbage is never returned.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import DecryptionFailed
from .keys import KEY_NAME_RE, KeyRing, get_keyring

VERSION = "v1"
NONCE_BYTES = 12  # 96 bits, random per encryption: GCM's recommended nonce size


@dataclass(frozen=True)
class Binding:
    """Where a value lives; all of it goes into the associated data."""

    row_id: int
    field: str
    owner_id: int
    provider: str
    uid: str

    def associated_data(self, key_name: str) -> bytes:
        # A JSON array is an unambiguous encoding of the tuple (no separator tricks).
        parts = [
            "linking_site.vault.token_set",
            VERSION,
            key_name,
            int(self.row_id),
            self.field,
            int(self.owner_id),
            self.provider,
            self.uid,
        ]
        return _AAD_JSON.encode(parts).encode("utf-8")


# One encoder, made once (json.dumps with arguments makes one per call): the associated data is
# built on every encryption and decryption.
_AAD_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encrypt(plaintext: str, *, binding: Binding, keyring: KeyRing | None = None) -> str:
    """Encrypt ``plaintext`` under the first key, bound to ``binding``."""
    if not isinstance(plaintext, str) or not plaintext:
        raise ValueError("Only non-empty strings are encrypted.")
    keyring = keyring or get_keyring()
    name = keyring.primary
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(keyring.key(name)).encrypt(
        nonce, plaintext.encode("utf-8"), binding.associated_data(name)
    )
    return f"{VERSION}.{name}.{_b64(nonce)}.{_b64(sealed)}"


def key_name_of(stored: str) -> str | None:
    """The key name a stored value names, or None if it is not in the vault's format."""
    parts = stored.split(".") if isinstance(stored, str) else []
    if len(parts) == 4 and parts[0] == VERSION and KEY_NAME_RE.match(parts[1]):
        return parts[1]
    return None


def decrypt(stored: str, *, binding: Binding, keyring: KeyRing | None = None) -> str:
    """Decrypt a stored value for exactly this ``binding``.

    Raises ``DecryptionFailed`` when the value is malformed or does not verify (wrong row, field,
    owner or key; tampered), and ``VaultKeyError`` when its key is not configured.
    """
    keyring = keyring or get_keyring()
    name = key_name_of(stored)
    if name is None:
        raise DecryptionFailed()
    key = keyring.key(name)
    _version, _name, nonce_text, sealed_text = stored.split(".")
    try:
        nonce, sealed = _unb64(nonce_text), _unb64(sealed_text)
    except (binascii.Error, ValueError):
        raise DecryptionFailed() from None
    if len(nonce) != NONCE_BYTES:
        raise DecryptionFailed()
    try:
        plain = AESGCM(key).decrypt(nonce, sealed, binding.associated_data(name))
    except InvalidTag:
        raise DecryptionFailed() from None
    try:
        return plain.decode("utf-8")
    except UnicodeDecodeError:
        raise DecryptionFailed() from None
