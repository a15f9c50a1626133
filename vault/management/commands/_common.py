"""Shared bits of the vault's commands: load the keys or stop with one line."""

from __future__ import annotations

from django.core.management.base import CommandError

from vault.errors import VaultKeyError
from vault.keys import KeyRing, get_keyring


def keyring_or_fail() -> KeyRing:
    try:
        return get_keyring()
    except VaultKeyError as error:
        raise CommandError(error.message) from None


def bounded_int(value: int, *, name: str, low: int, high: int) -> int:
    if not low <= value <= high:
        raise CommandError(f"{name} must be between {low} and {high} (got {value}).")
    return value
