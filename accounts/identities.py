"""A person's linked identities: the selectors the pages and commands read, and the default pick."""

from __future__ import annotations

from django.db import transaction
from social_django.models import UserSocialAuth

from .exceptions import IdentityNotFound
from .models import IdentityDetails, User, live_profile_filter
from .providers import Provider, configured_providers


def identities_for(user: User) -> list[UserSocialAuth]:
    """The user's identities with their details, oldest first, in one query."""
    return list(UserSocialAuth.objects.filter(user=user).select_related("details").order_by("created", "pk"))


def get_identity(*, user: User, identity_id: int | str) -> UserSocialAuth:
    """The user's own identity by id; someone else's id is answered exactly like an unknown one."""
    try:
        return UserSocialAuth.objects.select_related("details").get(pk=int(identity_id), user=user)
    except (UserSocialAuth.DoesNotExist, ValueError, TypeError):
        raise IdentityNotFound("That linked account was not found on your profile.") from None


def set_default_identity(*, user: User, identity_id: int | str) -> UserSocialAuth:
    """Make one identity the account used for its provider when a caller does not pick one."""
    with transaction.atomic():
        identity = get_identity(user=user, identity_id=identity_id)
        IdentityDetails.objects.filter(identity__user=user, identity__provider=identity.provider).update(
            is_default=False
        )
        IdentityDetails.objects.update_or_create(identity=identity, defaults={"is_default": True})
    return identity


def sign_in_options_for_profiles(profile_ids: list[int]) -> list[Provider]:
    """The configured providers those profiles can sign in with (shown on the suggestion page)."""
    providers = set(
        UserSocialAuth.objects.filter(live_profile_filter("user"), user_id__in=profile_ids).values_list(
            "provider", flat=True
        )
    )
    return [p for p in configured_providers() if p.name in providers]
