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

from django.utils import timezone
from django.views.decorators.debug import sensitive_variables
from social_core.exceptions import AuthException

from accounts.pipeline import SECRET_EXTRA_DATA_KEYS

from .errors import VaultUnavailable
from .revocation import detach_for_revocation
from .tokens import capture_tokens

logger = logging.getLogger(__name__)

#: Keys of a token response that are secrets; removed from the pipeline's ``response``.
SECRET_RESPONSE_KEYS = ("access_token", "refresh_token", "id_token")


@sensitive_variables()
def store_tokens(
    strategy, backend, social=None, response: dict[str, Any] | None = None, *args: Any, **kwargs: Any
) -> None:
    """Capture the token response into the vault; strip secrets from what the pipeline keeps."""
    if social is None or response is None:
        return
    received_at = timezone.now()
    try:
        capture_tokens(
            identity=social, response=response, received_at=received_at, requested_scopes=backend.get_scope()
        )
    except VaultUnavailable:
        # Fail closed: no plaintext fallback. The pipeline's transaction rolls back the link.
        raise AuthException(backend, code="vault_unavailable", stage="pipeline") from None
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
