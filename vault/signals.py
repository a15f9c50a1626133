"""The vault's signal receivers.

- An identity deleted outside the disconnect pipeline (its user deleted, a staff delete in the
  admin) still has its tokens moved to a pending revocation first. The disconnect pipeline's
  ``schedule_revocation`` has normally done it already; then this finds nothing to move.
- A deactivated user's agent keys are revoked at once.

Account merges are not signalled: accounts calls its adapter (``vault.adapter``) inside the merge
transaction.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models.signals import post_save, pre_delete
from django.dispatch import receiver
from social_django.models import UserSocialAuth

from .agents import revoke_all_keys
from .connect import cancel_pending
from .revocation import detach_for_revocation


@receiver(pre_delete, sender=UserSocialAuth, dispatch_uid="vault.detach_tokens_of_deleted_identity")
def detach_tokens_of_deleted_identity(sender, instance: UserSocialAuth, **kwargs) -> None:
    detach_for_revocation(identity=instance)


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="vault.close_agent_access_of_inactive")
def close_agent_access_of_inactive(sender, instance, **kwargs) -> None:
    """Deactivating a user revokes their agent keys at once (not only when a key is next used)."""
    if instance.is_active:
        return
    revoke_all_keys(user=instance, reason="user deactivated")
    cancel_pending(user=instance, reason="user deactivated")
