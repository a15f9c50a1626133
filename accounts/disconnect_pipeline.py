"""social-auth's disconnect pipeline steps (``SOCIAL_AUTH_DISCONNECT_PIPELINE`` in settings).

``accounts.unlinking.unlink_identity`` runs them in its transaction: the last-method rule first,
then (after the vault's revocation step) the deletion, its activity record and the notice.
"""

from __future__ import annotations

from django.db import transaction
from social_core.exceptions import AuthPolicyError

from activity import recording

from . import notifications
from .activity_kinds import AccountKind
from .models import IdentityDetails, User
from .providers import provider_title
from .unlinking import sign_in_methods_left


def allowed_to_disconnect(backend, user: User, association_id=None, *args, **kwargs) -> None:
    """Never leave a user without a way to sign in (our rule, by identity id, not per provider)."""
    if association_id is None:
        raise AuthPolicyError(backend, code="disconnect_disallowed", stage="disconnect")
    if not user.is_live and kwargs.get("staff_repair"):
        return  # staff removing an identity left on a retired profile: it cannot sign in anyway
    entries = user.social_auth.filter(pk=association_id)
    for entry in entries:
        if sign_in_methods_left(user=user, without=entry) == 0:
            raise AuthPolicyError(backend, code="disconnect_disallowed", stage="disconnect")


def disconnect(strategy, backend, entries, user: User, actor: User | None = None, *args, **kwargs) -> None:
    """Delete the identities, then record and announce it (the vault step ran before this one)."""
    request = strategy.request
    for entry in entries:
        details = IdentityDetails.objects.filter(identity=entry).first()
        account_name = details.account_name if details else entry.uid
        title = provider_title(entry.provider)
        identity_id = entry.pk
        recording.record(
            kind=AccountKind.UNLINKED,
            user=user,
            actor=actor,
            request=request,
            identity=entry,
            message=f"Removed {title} account {account_name}" + (f" (by staff {actor})" if actor else ""),
        )
        provider, uid = entry.provider, entry.uid
        entry.delete()
        transaction.on_commit(
            lambda provider=provider, uid=uid, account_name=account_name, identity_id=identity_id: (
                notifications.identity_removed(
                    user=user, provider=provider, uid=uid, account_name=account_name
                )
            )
        )
