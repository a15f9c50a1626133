"""Merging one profile into another, for people (after fresh proof of both) and for staff.

``merge_profiles`` is the one place a merge happens: one transaction that locks both profiles,
moves the chosen identities, lets the vault re-key or revoke tokens (``accounts.adapter``'s
``profiles_merging``), deletes the rest, ends the source profile's sessions and keeps it as an
inactive, closed profile.
The person's steps before it (which identities they just proved) are ``accounts.merge_flow``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.db import transaction
from django.http import HttpRequest
from django.utils.module_loading import import_string
from social_django.models import UserSocialAuth

from activity import recording

from . import notifications
from .activity_kinds import AccountKind
from .adapter import get_adapter
from .locking import lock_identities, lock_profiles
from .models import IdentityDetails, User, UserSession
from .providers import provider_title


class MergeError(Exception):
    """A merge was refused; ``str()`` says why in words a person can act on."""

    code = "merge_refused"


class MergeConflict(MergeError):
    """The profiles changed under us (merged, deactivated) since the merge started."""

    code = "merge_conflict"


class UnprovenIdentity(MergeError):
    code = "unproven_identity"


@dataclass
class MergePlan:
    """What a merge of ``source`` into ``into`` would do; shown before anything happens."""

    into: User
    source: User
    move: list[UserSocialAuth]
    drop: list[UserSocialAuth]
    extras: dict = field(default_factory=dict)

    def describe(self) -> list[str]:
        lines = [f"Merge profile {self.source.pk} ({self.source}) into profile {self.into.pk} ({self.into})."]
        for identity in self.move:
            lines.append(
                f"  move  identity {identity.pk}: {provider_title(identity.provider)} {identity.uid}"
            )
        for identity in self.drop:
            lines.append(
                f"  drop  identity {identity.pk}: {provider_title(identity.provider)} {identity.uid} "
                "(its tokens are revoked)"
            )
        for label, value in self.extras.items():
            lines.append(f"  {label}: {value}")
        lines.append(f"  profile {self.source.pk} is closed and kept, pointing at profile {self.into.pk}")
        return lines


def merge_extras(source: User) -> dict:
    """What other apps report about ``source`` for the review (token sets, agent keys ...)."""
    return get_adapter().merge_review(source)


def plan_merge(*, into: User, source: User, move_identity_ids: list[int] | None = None) -> MergePlan:
    """Which of ``source``'s identities move (all when ``move_identity_ids`` is None) and which drop."""
    _check_pair(into, source)
    identities = list(UserSocialAuth.objects.filter(user=source).select_related("details").order_by("pk"))
    wanted = None if move_identity_ids is None else {int(i) for i in move_identity_ids}
    if wanted is not None and not wanted <= {i.pk for i in identities}:
        raise MergeError("One of the chosen accounts is not on the other profile.")
    move = [i for i in identities if wanted is None or i.pk in wanted]
    drop = [i for i in identities if i not in move]
    return MergePlan(into=into, source=source, move=move, drop=drop, extras=merge_extras(source))


def _check_pair(into: User, source: User) -> None:
    if into.pk == source.pk:
        raise MergeError("A profile cannot be merged into itself.")
    for user in (into, source):
        if not user.is_live:
            raise MergeConflict(f"Profile {user.pk} was already merged or deactivated; nothing was changed.")


def check_staff_actor(actor: User | None) -> None:
    """A merge recorded as done by someone (``actor``) must be done by staff."""
    if actor is not None and not actor.is_staff:
        raise MergeError(f"{actor.get_username()!r} is not a staff member, so cannot merge profiles.")


def merge_profiles(
    *,
    into: User,
    source: User,
    move_identity_ids: list[int] | None,
    proven_identity_ids: set[int] | None = None,
    actor: User | None = None,
    request: HttpRequest | None = None,
) -> MergePlan:
    """Merge ``source`` into ``into`` in one transaction; a failure anywhere changes nothing.

    People may move only identities they just proved (``proven_identity_ids``); staff
    (``actor``) may move any. ``move_identity_ids=None`` moves all of them.
    """
    check_staff_actor(actor)
    with transaction.atomic():
        # The one lock order (``accounts.locking``): both profiles (ascending id, so
        # opposite-direction merges cannot deadlock; the second sees the first's result and is
        # refused), then their identities; the adapter (the vault's) locks token sets last. A refresh
        # in flight holds the same rows in the same order, so the merge waits for it and then
        # moves (and re-binds) the tokens it wrote.
        locked = lock_profiles([into.pk, source.pk])
        if len(locked) != 2 and into.pk != source.pk:
            raise MergeConflict("One of the profiles no longer exists; nothing was changed.")
        into, source = locked.get(into.pk, into), locked.get(source.pk, source)
        lock_identities(user_ids=[into.pk, source.pk])
        plan = plan_merge(into=into, source=source, move_identity_ids=move_identity_ids)
        if proven_identity_ids is not None:
            unproven = [i.pk for i in plan.move if i.pk not in proven_identity_ids]
            if unproven:
                raise UnprovenIdentity(
                    "You can only move accounts you just signed in with. Sign in with the others first, "
                    "or leave them unticked."
                )
        moved_ids = [i.pk for i in plan.move]
        dropped_ids = [i.pk for i in plan.drop]

        _move_identities(plan.move, into=into)

        get_adapter(request).profiles_merging(
            source=source,
            into=into,
            moved_identity_ids=moved_ids,
            dropped_identity_ids=dropped_ids,
            actor=actor,
        )
        UserSocialAuth.objects.filter(pk__in=dropped_ids).delete()

        source.is_active = False
        source.merged_into = into
        source.set_unusable_password()  # changes the session hash: any session left is invalid
        source.save(update_fields=["is_active", "merged_into", "password"])
        _end_sessions(source)

        _record_merge(
            into=into,
            source=source,
            moved_ids=moved_ids,
            dropped_ids=dropped_ids,
            actor=actor,
            request=request,
        )
        transaction.on_commit(lambda: notifications.profiles_merged(into=into, source=source))
    return plan


def _move_identities(identities: list[UserSocialAuth], *, into: User) -> None:
    """Re-home the identities; a moved one never becomes the default over one ``into`` already had."""
    UserSocialAuth.objects.filter(pk__in=[i.pk for i in identities]).update(user=into)
    for identity in identities:
        has_default = IdentityDetails.objects.filter(
            identity__user=into, identity__provider=identity.provider, is_default=True
        ).exclude(identity=identity)
        if has_default.exists():
            IdentityDetails.objects.filter(identity=identity).update(is_default=False, created_profile=False)
        else:
            IdentityDetails.objects.filter(identity=identity).update(created_profile=False)


def _record_merge(
    *,
    into: User,
    source: User,
    moved_ids: list[int],
    dropped_ids: list[int],
    actor: User | None,
    request: HttpRequest | None,
) -> None:
    """One activity record on each side: the profile that stays and the tombstone."""
    by = f" by staff {actor}" if actor else ""
    recording.record(
        kind=AccountKind.MERGED,
        user=into,
        actor=actor,
        request=request,
        message=f"Merged profile {source.pk} into this one{by}: moved {len(moved_ids)} account(s), "
        f"dropped {len(dropped_ids)}",
        data={"source": source.pk, "moved": moved_ids, "dropped": dropped_ids},
    )
    recording.record(
        kind=AccountKind.MERGED,
        user=source,
        actor=actor,
        request=request,
        message=f"This profile was merged into profile {into.pk}{by}",
        data={"into": into.pk, "moved": moved_ids, "dropped": dropped_ids},
    )


def _end_sessions(user: User) -> None:
    engine = import_string(f"{settings.SESSION_ENGINE}.SessionStore")
    for record in UserSession.objects.filter(user=user):
        store: SessionBase = engine(session_key=record.session_key)
        store.delete()
    UserSession.objects.filter(user=user).delete()
