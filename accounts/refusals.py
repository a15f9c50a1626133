"""What happens after a provider round trip is refused once its code was already redeemed.

By then the provider has issued tokens, and the pipeline's transaction (``ProviderProfileMixin``)
has rolled back everything the flow wrote. These functions run after that rollback, so what they
write survives the refusal:

* the tokens go to the adapter's ``unkept_tokens`` (``accounts.adapter``; the vault's keeps
  them encrypted only until they are revoked at the provider). ``accounts`` never imports the
  vault (docs/architecture.md).
* when someone tried to link an identity that belongs to another profile (``identity_in_use``),
  that identity's owner gets an activity record and a mail.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.views.decorators.debug import sensitive_variables
from social_django.models import UserSocialAuth

from activity import recording

from . import notifications
from .activity_kinds import AccountKind
from .adapter import get_adapter
from .models import User
from .providers import provider_title

logger = logging.getLogger(__name__)

#: The parts of a token response the handlers receive (secrets and what says how long they live).
TOKEN_RESPONSE_KEYS = ("access_token", "refresh_token", "id_token", "token_type", "expires_in", "scope")


@sensitive_variables()
def hand_over_unkept_tokens(
    *, provider: str, uid: str, owner: User | None, tokens: dict[str, Any], reason: str
) -> None:
    """Give tokens a refused (or unfinished) flow received, and will not keep, to be revoked.

    A failing adapter is logged (by type, never with the tokens) and does not hide the refusal.
    """
    if not isinstance(tokens.get("access_token"), str) or not tokens["access_token"]:
        return
    owner_id = owner.pk if owner is not None and owner.pk else None
    adapter = get_adapter()
    try:
        adapter.unkept_tokens(provider=provider, uid=uid, owner_id=owner_id, tokens=tokens, reason=reason)
    except Exception as error:  # the person still gets the refusal; staff get the log line
        logger.error(
            "Could not hand the %s tokens of a refused flow (%s) to %s: %s",
            provider,
            reason,
            type(adapter).__qualname__,
            type(error).__name__,
        )


def identity_in_use_attempt(
    *, provider: str, uid: str, attempted_by: User | None, request: HttpRequest | None
) -> None:
    """Tell an identity's owner that someone tried to link it to another profile (refused).

    The owner learns what was tried and when, not who tried (that is another person's profile).
    """
    identity = (
        UserSocialAuth.objects.select_related("user", "details").filter(provider=provider, uid=uid).first()
    )
    if identity is None or (attempted_by is not None and identity.user_id == attempted_by.pk):
        return
    owner = identity.user
    details = getattr(identity, "details", None)
    account_name = (details.account_name if details else "") or identity.uid
    title = provider_title(provider)
    with transaction.atomic():
        recording.record(
            kind=AccountKind.LINK_REFUSED,
            user=owner,
            request=request,
            identity=identity,
            message=f"Someone signed in to another profile tried to link your {title} account "
            f"{account_name}; it was refused",
            data={"code": "identity_in_use", "attempt_on_your_identity": True},
        )
        transaction.on_commit(
            lambda: notifications.identity_link_refused(
                owner=owner, provider=provider, account_name=account_name
            )
        )
