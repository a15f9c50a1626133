"""social-auth pipeline steps owned by the vault (wired in settings; accounts never imports vault).

``store_tokens`` runs in ``SOCIAL_AUTH_PIPELINE`` right after the identity is saved: the token
response goes into the identity's encrypted token set, and the tokens are taken out of the
pipeline's ``response`` so no later step (nor a partial-pipeline row, which would store the
pipeline's arguments in ``social_auth_partial``) ever holds them in plaintext.

``schedule_revocation`` runs in ``SOCIAL_AUTH_DISCONNECT_PIPELINE`` before the identity is deleted,
replacing social-auth's ``revoke_tokens`` (which sends Google's token in a URL, nothing for GitHub,
and aborts the disconnect when the provider fails).
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables
from social_core.exceptions import AuthException

from accounts.locking import InactiveProfile
from accounts.pipeline import SECRET_EXTRA_DATA_KEYS
from accounts.providers import holds_tokens

from .capture import capture_tokens
from .errors import VaultUnavailable
from .models import TokenSet
from .responses import parse_token_response
from .revocation import detach_for_revocation, revoke_after_commit

logger = logging.getLogger(__name__)

#: Keys of a token response that are secrets; removed from the pipeline's ``response``.
SECRET_RESPONSE_KEYS = ("access_token", "refresh_token", "id_token")


@sensitive_variables()
def store_tokens(
    strategy, backend, social=None, response: dict[str, Any] | None = None, *args: Any, **kwargs: Any
) -> None:
    """Capture the token response into the vault; strip secrets from what the pipeline keeps."""
    if social is None or response is None or not holds_tokens(backend.name):
        return
    received_at = timezone.now()
    try:
        capture_tokens(
            identity=social, response=response, received_at=received_at, requested_scopes=backend.get_scope()
        )
    except VaultUnavailable:
        # Fail closed: no plaintext fallback. The pipeline's transaction rolls back the link.
        raise AuthException(backend, code="vault_unavailable", stage="pipeline") from None
    except InactiveProfile:
        # Merged away or deactivated while the round trip ran: the link is rolled back.
        raise AuthException(backend, code="profile_inactive", stage="pipeline") from None
    for key in SECRET_RESPONSE_KEYS:
        response.pop(key, None)
    leftover = {key for key in (social.extra_data or {}) if key in SECRET_EXTRA_DATA_KEYS}
    if leftover:
        social.extra_data = {k: v for k, v in social.extra_data.items() if k not in SECRET_EXTRA_DATA_KEYS}
        social.save(update_fields=["extra_data", "modified"])
        logger.warning(
            "Removed %d secret key(s) from %s identity %s's extra_data",
            len(leftover),
            social.provider,
            social.pk,
        )


def schedule_revocation(strategy, backend, entries=(), *args: Any, actor=None, **kwargs: Any) -> None:
    """Move each removed identity's tokens into a pending revocation; revoke after commit."""
    for entry in entries:
        detach_for_revocation(identity=entry, actor=actor)


@sensitive_variables()
def revoke_unkept_tokens(
    *, provider: str, uid: str, owner_id: int | None, tokens: dict[str, Any], reason: str
) -> int | None:
    """Tokens a refused or unfinished flow received: keep them encrypted only until revoked.

    Called through accounts' adapter (``vault.adapter``; ``accounts.refusals`` calls it after the
    pipeline's rollback). The tokens become a detached ``revoke_pending`` token set, exactly like a
    removed identity's, and one revocation attempt is made after commit; ``vault_refresh`` retries
    with back-off. ``owner_id`` 0 means nobody was signed in. Returns the token set's id.
    """
    parsed = parse_token_response(tokens)
    if not parsed.access_token:
        return None
    try:
        with transaction.atomic():
            orphan = TokenSet.create_detached(
                owner_id=owner_id or 0, provider=provider, uid=str(uid or ""), response=parsed
            )
            revoke_after_commit(orphan.pk)
    except VaultUnavailable as error:
        # No key to keep them under: they cannot be stored or retried, only expire at the provider.
        logger.error(
            "Could not keep the %s tokens of a refused flow (%s) for revocation: %s",
            provider,
            reason,
            type(error).__name__,
        )
        return None
    logger.info(
        "Token set %s: %s tokens of a refused flow (%s) wait for revocation", orphan.pk, provider, reason
    )
    return orphan.pk
