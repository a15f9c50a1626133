"""A stored token set, read for use: its keys, its decryption, its faults, and when it is due.

Shared by the hand-out (``vault.access``), capture (``vault.capture``) and refresh
(``vault.refresh``): each of them reads a stored set the same way and answers the same errors
when it cannot be used, so these live below all three.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.views.decorators.debug import sensitive_variables

from accounts.providers import provider_title

from . import errors
from .keys import KeyRing, get_keyring
from .models import TokenSet

logger = logging.getLogger(__name__)

#: A token younger than this (or than half its lifetime, if shorter) is never refreshed only
#: because ``min_ttl`` asks for more than the provider's tokens live (issue 12.3).
MIN_REFRESH_AGE = 300


def keyring_or_raise() -> KeyRing:
    """The vault keys, or the vault's own "unavailable" error (logged once here, never the key)."""
    try:
        return get_keyring()
    except errors.VaultKeyError as error:
        logger.error("Token vault unavailable: %s", error.message)
        raise errors.VaultKeyError(errors.VaultUnavailable.default_message) from None


def keyring_fingerprint() -> str:
    try:
        return get_keyring().fingerprint
    except errors.VaultKeyError:
        return ""


def fault_may_have_cleared(token_set: TokenSet) -> bool:
    """A row flagged because it did not decrypt under keys that have changed since: try it again."""
    return bool(token_set.fault_keyring) and token_set.fault_keyring != keyring_fingerprint()


def flag_vault_fault(token_set: TokenSet, *, code: str) -> None:
    """Flag ``token_set``; a value that did not decrypt may be the keys' fault (another
    environment's key under the right name), so the flag remembers the keys' fingerprint."""
    fingerprint = keyring_fingerprint() if code == "decryption_failed" else ""
    token_set.flag_vault_fault(code=code, fingerprint=fingerprint)


def fault_error(token_set: TokenSet, requested: Iterable[str] = ()) -> errors.VaultFault:
    return errors.VaultFault(
        connection=token_set.provider,
        authorize_url=errors.authorize_url(token_set.provider, list(requested)),
    )


def reauth_error(token_set: TokenSet, requested: Iterable[str] = ()) -> errors.ReauthorizationRequired:
    title = provider_title(token_set.provider)
    return errors.ReauthorizationRequired(
        f"{title} no longer accepts this account's stored authorization; connect it again.",
        connection=token_set.provider,
        authorize_url=errors.authorize_url(token_set.provider, requested),
    )


def gone_error(token_set: TokenSet | None, requested: Iterable[str] = ()) -> errors.ConnectionRequired:
    provider = token_set.provider if token_set is not None else ""
    return errors.ConnectionRequired(
        "This account was disconnected while its token was being fetched.",
        connection=provider,
        authorize_url=errors.authorize_url(provider, requested) if provider else None,
    )


@sensitive_variables()
def decrypt_access_token(token_set: TokenSet, requested: Iterable[str] = ()) -> str:
    """The stored access token, or the vault's error: a missing key is the configuration's fault
    (nothing flagged); a value that does not decrypt flags the row (issue 12.5)."""
    try:
        return token_set.read_access_token()
    except errors.VaultKeyError as error:
        # A key missing from VAULT_KEYS is the configuration's fault (readiness says so), not this
        # row's: nothing is flagged, and the row works again once the key is back.
        logger.error(
            "Token set %s: the stored access_token could not be decrypted (%s)",
            token_set.pk,
            type(error).__name__,
        )
        raise type(error)(
            connection=token_set.provider,
            authorize_url=errors.authorize_url(token_set.provider, list(requested)),
        ) from None
    except errors.VaultUnavailable:
        flag_vault_fault(token_set, code="decryption_failed")
        raise fault_error(token_set, requested) from None


@sensitive_variables()
def kept_refresh_token(token_set: TokenSet, keyring: KeyRing | None) -> str | None:
    """The stored refresh token, to keep when a new response brings none (dropped if unreadable)."""
    if not token_set.refresh_token_encrypted:
        return None
    try:
        return token_set.read_refresh_token(keyring=keyring)
    except errors.VaultUnavailable:
        logger.warning("Token set %s: the stored refresh token did not decrypt and was dropped", token_set.pk)
        return None


def needs_refresh(token_set: TokenSet, min_ttl: int, now: datetime) -> bool:
    """Whether the token expires within ``min_ttl`` seconds, counting no more than a refresh can
    give: when ``min_ttl`` is longer than the provider's tokens live (``min_ttl=3600`` against
    Google's 3599 s), a token is not refreshed again until it is ``MIN_REFRESH_AGE`` (or half its
    lifetime) old, and is answered meanwhile with its real ``expires_in`` (issue 12.3)."""
    if token_set.expires_at is None:
        return False
    issued_at = token_set.issued_at or token_set.refreshed_at
    if issued_at is not None:
        lifetime = math.floor((token_set.expires_at - issued_at).total_seconds())
        if lifetime > 0:
            min_ttl = min(min_ttl, lifetime - min(MIN_REFRESH_AGE, lifetime // 2))
    return token_set.expires_at <= now + timedelta(seconds=min_ttl)
