"""The one lock order for profile, identity and token-set rows, written down once.

Every transaction that locks more than one of these rows takes them in this order, each kind in
ascending id order:

1. profile rows (``accounts.User``),
2. identity rows (social-auth's ``UserSocialAuth``),
3. token-set rows (``vault.TokenSet``; the vault takes them in ``vault.locking`` after calling
   the functions here, since ``accounts`` never imports ``vault``).

Two transactions that follow one order can wait for each other but never deadlock (issue 20.2:
a refresh that locked its token set and then saved its identity row, racing a disconnect that
locked the identity and then the token set, deadlocked on PostgreSQL). A lock already held may be
taken again in any order; a new lock on an *earlier* kind after a later one is the mistake.

Every write that attaches something to a profile (an identity, tokens, an agent key, a completed
connect request) locks the profile row first and re-checks that it is active and not merged
(``lock_active_profile``): a merge holds that lock while it moves identities and retires the
profile, so the write either lands before the merge (and is moved with the rest) or sees the
retired profile and is refused.

On SQLite ``select_for_update`` is a no-op; its write transactions (IMMEDIATE) already run one
at a time, so the order holds trivially there.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from social_django.models import UserSocialAuth

from .models import User


class InactiveProfile(Exception):
    """The profile was merged into another one or deactivated; nothing may be attached to it."""

    code = "profile_inactive"

    def __init__(self, user_id: int | None, merged_into_id: int | None = None) -> None:
        self.user_id = user_id
        self.merged_into_id = merged_into_id
        where = f" (merged into profile {merged_into_id})" if merged_into_id else ""
        super().__init__(f"Profile {user_id} is no longer active{where}; nothing was attached to it.")


def _require_atomic() -> None:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("Row locks are taken inside the caller's transaction (transaction.atomic).")


def lock_profiles(user_ids: Iterable[int]) -> dict[int, User]:
    """Step 1: lock these profile rows (ascending id); returns the ones that exist, by id."""
    _require_atomic()
    ids = sorted({int(pk) for pk in user_ids if pk is not None})
    if not ids:
        return {}
    return {
        user.pk: user
        for user in User.objects.select_for_update(no_key=True).filter(pk__in=ids).order_by("pk")
    }


def lock_identities(*, user_ids: Iterable[int] = (), identity_ids: Iterable[int] = ()) -> list[int]:
    """Step 2: lock the identity rows of these profiles and/or with these ids (ascending id).

    The caller has locked the profiles concerned first (``lock_profiles``)."""
    _require_atomic()
    users = sorted(set(user_ids))
    ids = sorted(set(identity_ids))
    if not users and not ids:
        return []
    queryset = UserSocialAuth.objects.select_for_update(no_key=True)
    if users and ids:
        queryset = queryset.filter(user_id__in=users) | queryset.filter(pk__in=ids)
    elif users:
        queryset = queryset.filter(user_id__in=users)
    else:
        queryset = queryset.filter(pk__in=ids)
    return list(queryset.order_by("pk").values_list("pk", flat=True))


def check_active(user: User | None, *, user_id: int | None = None) -> User:
    """``user`` if it is an active, unmerged profile; else ``InactiveProfile``."""
    if user is None or not user.is_live:
        raise InactiveProfile(
            user.pk if user is not None else user_id, user.merged_into_id if user is not None else None
        )
    return user


def lock_active_profile(user_id: int) -> User:
    """Step 1 for a write that attaches something to a profile: lock it, re-read it, and refuse
    (``InactiveProfile``) when it was merged away or deactivated meanwhile."""
    return check_active(lock_profiles([user_id]).get(int(user_id)), user_id=user_id)


def lock_identity_with_owner(
    identity_id: int, *, attempts: int = 5
) -> tuple[User | None, UserSocialAuth | None]:
    """Steps 1 and 2 for one identity: its owner, then the identity itself.

    The owner is read before its lock is held, so a merge may move the identity in between; then
    the owner we locked is no longer the one, and we start again with the new owner (a few times).
    Returns ``(None, None)`` when the identity no longer exists.
    """
    _require_atomic()
    for _ in range(attempts):
        owner_id = UserSocialAuth.objects.filter(pk=identity_id).values_list("user_id", flat=True).first()
        if owner_id is None:
            return None, None
        owner = lock_profiles([owner_id]).get(owner_id)
        identity = UserSocialAuth.objects.select_for_update(no_key=True).filter(pk=identity_id).first()
        if identity is None:
            return owner, None
        if identity.user_id == owner_id:
            return owner, identity
    raise transaction.TransactionManagementError(
        f"Identity {identity_id} kept moving between profiles while it was being locked."
    )
