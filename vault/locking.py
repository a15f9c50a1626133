"""Step 3 of the one lock order (``accounts.locking``): token sets, after profiles and identities.

Refresh, capture, rebind, unlink (through the disconnect pipeline), merge (through its signal) and
staff revocation all take their row locks through these functions or after ``accounts.locking``'s,
so every transaction waits in the same direction: profile → identity → token set.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection
from social_django.models import UserSocialAuth

from accounts.locking import check_active, lock_identity_with_owner, lock_profiles
from accounts.models import User

from .models import TokenSet


def lock_rows(queryset):
    """``SELECT ... FOR NO KEY UPDATE`` where the database has row locks (not SQLite)."""
    if connection.features.has_select_for_update:
        return queryset.select_for_update(no_key=connection.features.has_select_for_no_key_update)
    return queryset


@dataclass
class Locked:
    """The rows one transaction holds for one identity, taken in the lock order."""

    owner: User | None
    identity: UserSocialAuth | None
    token_set: TokenSet | None


def lock_identity_chain(*, identity_id: int) -> Locked:
    """Lock the identity's owner, the identity, then its token set (inside the caller's transaction)."""
    owner, identity = lock_identity_with_owner(identity_id)
    token_set = lock_rows(TokenSet.objects.filter(identity_id=identity_id)).first() if identity else None
    return Locked(owner=owner, identity=identity, token_set=token_set)


def lock_token_set_chain(*, token_set_id: int) -> Locked:
    """Lock a token set with, first, its identity's owner and the identity (when it has one).

    The identity is read before the locks are held; when the token set was detached or moved to
    another identity meanwhile, it is locked as it is now and ``identity`` says where it belongs.
    """
    identity_id = TokenSet.objects.filter(pk=token_set_id).values_list("identity_id", flat=True).first()
    owner = identity = None
    if identity_id is not None:
        owner, identity = lock_identity_with_owner(identity_id)
    token_set = lock_rows(TokenSet.objects.filter(pk=token_set_id)).first()
    if token_set is not None and token_set.identity_id != identity_id:
        identity = None  # detached (or re-attached) while we were locking: the caller sees it gone
    return Locked(owner=owner, identity=identity, token_set=token_set)


def lock_active_owner_chain(*, identity: UserSocialAuth) -> Locked:
    """For writes that attach tokens to ``identity``'s profile: the profile must be active."""
    locked = lock_identity_chain(identity_id=identity.pk)
    if locked.identity is None:
        # Not committed yet or already gone: lock its profile (same order) and check that alone.
        owner = lock_profiles([identity.user_id]).get(identity.user_id)
        return Locked(
            owner=check_active(owner, user_id=identity.user_id),
            identity=None,
            token_set=lock_rows(TokenSet.objects.filter(identity_id=identity.pk)).first(),
        )
    check_active(locked.owner, user_id=identity.user_id)
    return locked
