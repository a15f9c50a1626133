"""Capture: tokens that arrive (a sign-in or link, plaintext imported from a stock install) stored
encrypted in their identity's token set, and re-bound when the identity moves to another user.

Apart from the hand-out (``vault.access``) and refresh because this is the vault's way in: the
social-auth pipeline (``vault.pipeline``), the plaintext import and account merges call it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from django.db import transaction
from django.views.decorators.debug import sensitive_variables
from social_django.models import UserSocialAuth

from accounts.providers import provider_title
from accounts.scope_words import scope_text
from activity import recording

from . import errors
from . import scopes as scope_rules
from .activity_kinds import VaultKind
from .locking import lock_active_owner_chain, lock_rows
from .models import TokenSet
from .responses import parse_token_response
from .stored import kept_refresh_token, keyring_or_raise

logger = logging.getLogger(__name__)


@sensitive_variables()
def capture_tokens(
    *,
    identity: UserSocialAuth,
    response: Mapping[str, Any],
    received_at: datetime | None = None,
    requested_scopes: Iterable[str] = (),
) -> TokenSet | None:
    """Store a token response (sign-in or link) in ``identity``'s token set, encrypted.

    Expiry is made absolute from ``received_at``. Granted scopes are the response's ``scope``; only
    when a response has none (RFC 6749 5.1: then the grant is what was asked) are
    ``requested_scopes`` used. A response without a refresh token keeps the stored one.
    """
    tokens = parse_token_response(response, received_at=received_at)
    if not tokens.plausible:
        # Never stored: a blank or garbled value would only be handed out later (issue 12.4).
        logger.warning(
            "Token response for %s identity %s had no usable access token; nothing was stored",
            identity.provider,
            identity.pk,
        )
        return None
    keyring = keyring_or_raise()
    granted = tokens.scopes
    scopes_reported = bool(granted)
    if not scopes_reported:
        # No (or an empty) ``scope``: RFC 6749 5.1 says the grant is then what was asked. GitHub
        # App user tokens always answer ``scope=""``: their access is the app's permissions.
        granted = scope_rules.normalise_requested(list(requested_scopes))
    with transaction.atomic():
        # Profile, identity, token set (the one lock order); a profile merged away or deactivated
        # meanwhile gets nothing attached (``accounts.locking.InactiveProfile``, issue 20.3).
        token_set = lock_active_owner_chain(identity=identity).token_set
        if token_set is None:
            token_set = TokenSet.objects.create(
                identity=identity, owner_id=identity.user_id, provider=identity.provider, uid=identity.uid
            )
        stored = list(token_set.scopes or [])
        if not scopes_reported and token_set.status == TokenSet.Status.ACTIVE:
            # The provider listed nothing (GitHub answers ``scope=""``) and grants accumulate there:
            # a plain sign-in asking the defaults still holds what was granted before (issue 14.2).
            granted = stored + [scope for scope in granted if scope not in stored]
        lost = [scope for scope in stored if scope not in granted]
        if lost:
            _record_narrowed(identity=identity, lost=lost)
        refresh_token = tokens.refresh_token or kept_refresh_token(token_set, keyring)
        token_set.provider, token_set.uid = identity.provider, identity.uid
        token_set.mark_active(
            response=tokens,
            refresh_token=refresh_token,
            owner_id=identity.user_id,
            scopes=granted,
            scopes_reported=scopes_reported,
            keyring=keyring,
        )
    logger.info(
        "Stored tokens for %s identity %s (token set %s, %d scope(s), refresh token %s)",
        identity.provider,
        identity.pk,
        token_set.pk,
        len(granted),
        "present" if refresh_token else "absent",
    )
    return token_set


def narrowed_message(*, provider: str, lost: list[str]) -> str:
    """What the person reads when a new token holds less than the stored one did."""
    return f"{provider_title(provider)} access narrowed: {'; '.join(map(scope_text, lost))} no longer granted"


def _record_narrowed(*, identity: UserSocialAuth, lost: list[str]) -> None:
    # Never silent (issue 14.2): an agent relying on a lost scope starts getting insufficient_scope,
    # so the person is told in activity and on the connections page (``vault.status``).
    recording.record(
        kind=VaultKind.SCOPES_NARROWED,
        user=identity.user,
        identity=identity,
        message=narrowed_message(provider=identity.provider, lost=lost),
        data={"lost": lost},
    )


@sensitive_variables()
def rebind_owner(*, identity_id: int, owner_id: int) -> bool:
    """Re-encrypt an identity's token set bound to ``owner_id`` (after the identity moved users).

    Returns whether it was re-bound; a value that does not decrypt is left as it is (logged).
    Runs inside the merge's transaction, which holds the profile and identity locks already, so
    this takes the token set last, as the lock order says (``accounts.locking``).
    """
    with transaction.atomic():
        token_set = lock_rows(TokenSet.objects.filter(identity_id=identity_id)).first()
        if token_set is None or token_set.owner_id == owner_id:
            return False
        try:
            access_token, refresh_token = token_set.read_access_token(), token_set.read_refresh_token()
        except errors.VaultUnavailable as error:
            logger.error(
                "Token set %s could not be re-bound to its new owner (%s)", token_set.pk, type(error).__name__
            )
            return False
        token_set.rebind(owner_id=owner_id, access_token=access_token, refresh_token=refresh_token or None)
    logger.info("Token set %s re-bound to user %s", token_set.pk, owner_id)
    return True
