"""One documented signal: an identity deleted outside the disconnect pipeline (its user deleted,
a staff delete in the admin) still has its tokens moved to a pending revocation first.

The disconnect pipeline's ``schedule_revocation`` has normally done it already; then this finds
nothing to move.
"""

from __future__ import annotations

from django.db.models.signals import pre_delete
from django.dispatch import receiver
from social_django.models import UserSocialAuth


@receiver(pre_delete, sender=UserSocialAuth, dispatch_uid="vault.detach_tokens_of_deleted_identity")
def detach_tokens_of_deleted_identity(sender, instance: UserSocialAuth, **kwargs) -> None:
    from .revocation import detach_for_revocation

    detach_for_revocation(identity=instance)
