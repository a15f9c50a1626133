"""Proof that the configured vault keys read what the database holds: ``/readyz``, the system
checks (``vault.E001``-``E003``) and the stored key names they compare.

Apart from ``vault.keys`` because these read token sets, and ``keys`` is below ``models`` (the
models encrypt with the keys): keeping them there made the cycle ``keys -> models -> crypto -> keys``.
"""

from __future__ import annotations

from django.core.checks import Error

from .errors import VaultKeyError, VaultUnavailable
from .keys import KeyRing, get_keyring
from .models import TokenSet


def readiness_problem() -> str | None:
    """For ``/readyz``: None when the keys load and decrypt a sample of what the database holds,
    else the one-line problem (never a key)."""
    try:
        keyring = get_keyring()
    except VaultKeyError as error:
        return f"vault keys: {error.message}"
    try:
        problem = sample_decrypt_problem(keyring)
    except Exception:  # no database (yet): the database line of /readyz says so
        return None
    return f"vault keys: {problem}" if problem else None


#: Token sets checked per key name by ``/readyz`` and ``check --deploy`` (the newest ones).
SAMPLE_PER_KEY = 3


def sample_decrypt_problem(keyring: KeyRing, *, per_key: int = SAMPLE_PER_KEY) -> str | None:
    """None when the newest few token sets under each stored key name decrypt with ``keyring``.

    A key under the right name but with other bytes (another environment's key) loads fine and
    encrypts new values, while every stored value fails to decrypt (issue 20.4): only decrypting
    real rows tells. The values are decrypted and dropped here; nothing is returned but one line.
    """
    bad: list[str] = []
    for name in sorted(stored_key_names()):
        if name not in keyring.names:
            bad.append(f"{name} (not in VAULT_KEYS)")
            continue
        rows = TokenSet.objects.filter(key_name=name).order_by("-updated_at", "-pk")[:per_key]
        for token_set in rows:
            try:
                token_set.read_access_token(keyring=keyring)
                token_set.read_refresh_token(keyring=keyring)
            except VaultUnavailable:  # does not verify, or names a key not loaded
                bad.append(name)
                break
    if not bad:
        return None
    return (
        f"stored tokens do not decrypt with the configured key(s): {', '.join(bad)} "
        "(a wrong key under the right name?)"
    )


def check_keys(app_configs=None, **kwargs) -> list:
    """System check: keys load, and no stored value names a key that is no longer configured.

    The second part reads the database (one grouped query); when the tables are not there yet
    (before ``migrate``) or the database is unreachable it is skipped, since other checks and
    ``/readyz`` report those.
    """
    try:
        keyring = get_keyring()
    except VaultKeyError as error:
        return [
            Error(
                error.message,
                hint="Set VAULT_KEYS to name:base64-of-32-random-bytes entries.",
                id="vault.E001",
            )
        ]
    try:
        unknown = stored_key_names() - set(keyring.names)
    except Exception:  # no database (yet): nothing stored to compare against
        return []
    if unknown:
        listed = ", ".join(sorted(unknown))
        return [
            Error(
                f"Stored tokens are encrypted under vault key(s) not in VAULT_KEYS: {listed}.",
                hint="Put the key(s) back in VAULT_KEYS (after the first one) and run "
                "manage.py vault_rotate_keys before removing them.",
                id="vault.E002",
            )
        ]
    return []


def check_keys_decrypt(app_configs=None, **kwargs) -> list:
    """Deploy check: the configured keys decrypt a sample of the stored token sets per key name."""
    try:
        keyring = get_keyring()
    except VaultKeyError:
        return []  # vault.E001 says it
    try:
        problem = sample_decrypt_problem(keyring)
    except Exception:  # no database (yet): nothing stored to prove against
        return []
    if problem is None:
        return []
    return [
        Error(
            f"Vault keys: {problem}.",
            hint="Set VAULT_KEYS to the keys these token sets were written with (vault_status --verify "
            "counts every value that fails).",
            id="vault.E003",
        )
    ]


def stored_key_names() -> set[str]:
    """Every key name used by a stored value (by the indexed ``key_name`` column)."""
    return set(TokenSet.objects.encrypted().values_list("key_name", flat=True).distinct())
