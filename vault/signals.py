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


def _connect_merge_receiver() -> None:
    """Take part in account merges (``accounts.signals.profiles_merging``), if accounts sends it."""
    try:
        from accounts.signals import profiles_merging
    except ImportError:  # an accounts app without merges
        return
    profiles_merging.connect(rebind_moved_token_sets, dispatch_uid="vault.rebind_moved_token_sets")


def rebind_moved_token_sets(sender, into, moved_identity_ids=(), **kwargs) -> None:
    """Re-encrypt moved identities' tokens bound to their new owner (dropped ones are revoked by
    ``detach_tokens_of_deleted_identity`` when the merge deletes them). Never raises: a token set
    that cannot be re-bound still reads under its old binding, and is re-bound on its next refresh.
    """
    from .tokens import rebind_owner

    for identity_id in moved_identity_ids:
        rebind_owner(identity_id=identity_id, owner_id=into.pk)


_connect_merge_receiver()
