"""The vault's signal receivers.

- An identity deleted outside the disconnect pipeline (its user deleted, a staff delete in the
  admin) still has its tokens moved to a pending revocation first. The disconnect pipeline's
  ``schedule_revocation`` has normally done it already; then this finds nothing to move.
- Account merges (``accounts.signals.profiles_merging``): moved identities' tokens are re-bound
  to their new owner; the merged-away profile's agent keys are revoked and its pending connect
  requests closed.
- A deactivated user's agent keys are revoked at once.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models.signals import post_save, pre_delete
from django.dispatch import receiver
from social_django.models import UserSocialAuth

from .agents import revoke_all_keys
from .capture import rebind_owner
from .connect import cancel_pending
from .revocation import detach_for_revocation


@receiver(pre_delete, sender=UserSocialAuth, dispatch_uid="vault.detach_tokens_of_deleted_identity")
def detach_tokens_of_deleted_identity(sender, instance: UserSocialAuth, **kwargs) -> None:
    detach_for_revocation(identity=instance)


def _connect_merge_receivers() -> None:
    """Take part in account merges (``accounts.signals.profiles_merging``), if accounts sends it."""
    try:
        from accounts.signals import profiles_merging
    except ImportError:  # an accounts app without merges
        return
    profiles_merging.connect(rebind_moved_token_sets, dispatch_uid="vault.rebind_moved_token_sets")
    profiles_merging.connect(close_agent_access_of_merged, dispatch_uid="vault.close_agent_access_of_merged")


def rebind_moved_token_sets(sender, into, moved_identity_ids=(), **kwargs) -> None:
    """Re-encrypt moved identities' tokens bound to their new owner (dropped ones are revoked by
    ``detach_tokens_of_deleted_identity`` when the merge deletes them). Never raises: a token set
    that cannot be re-bound still reads under its old binding, and is re-bound on its next refresh.
    """
    for identity_id in moved_identity_ids:
        rebind_owner(identity_id=identity_id, owner_id=into.pk)


def close_agent_access_of_merged(sender, source, into, **kwargs) -> None:
    """A merged-away profile's agent keys stop working and its pending connect requests close."""
    revoke_all_keys(user=source, reason=f"profile merged into profile {into.pk}")
    cancel_pending(user=source, reason=f"profile merged into profile {into.pk}")


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="vault.close_agent_access_of_inactive")
def close_agent_access_of_inactive(sender, instance, **kwargs) -> None:
    """Deactivating a user revokes their agent keys at once (not only when a key is next used)."""
    if instance.is_active:
        return
    revoke_all_keys(user=instance, reason="user deactivated")
    cancel_pending(user=instance, reason="user deactivated")


_connect_merge_receivers()
