"""Users (primary profiles), what we know about each linked identity, and their sessions.

An identity itself is social-auth's ``UserSocialAuth`` row, keyed by ``(provider, uid)``. What the
provider told us about it (display name, email and whether it verified it) lives beside it in
``IdentityDetails`` so that ``extra_data`` can stay free of anything we render or decide on.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from social_django.models import UserSocialAuth

from .providers import provider_title


def live_profile_filter(path: str = "") -> models.Q:
    """ "Active and not merged away", for a user reached through ``path`` (e.g. ``"identity__user"``).

    The one spelling of the rule: a merged profile is also deactivated, but both are checked so a
    profile deactivated by hand and one merged away are never mistaken for each other's repair.
    """
    prefix = f"{path}__" if path else ""
    return models.Q(**{f"{prefix}is_active": True, f"{prefix}merged_into__isnull": True})


class UserQuerySet(models.QuerySet):
    """Selectors over profiles (``User.profiles``)."""

    def live(self) -> UserQuerySet:
        """Profiles that can sign in and hold identities: active and not merged away."""
        return self.filter(live_profile_filter())


class User(AbstractUser):
    """The primary profile. Created by the first sign-in; later identities never overwrite it."""

    name = models.CharField("full name", max_length=255, blank=True)
    avatar_url = models.URLField(max_length=500, blank=True)
    merged_into = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="merged_profiles",
        help_text="Set when this profile was merged into another one and kept, closed.",
    )

    # Django's own manager stays the default (declared first: a model's own managers come before
    # inherited ones) and the one migrations record; ``profiles`` adds the selectors beside it.
    # Replacing ``objects`` would need a migration that changes nothing in the database.
    objects = UserManager()
    profiles = UserQuerySet.as_manager()

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"

    def __str__(self) -> str:
        return self.name or self.email or self.username

    @property
    def is_live(self) -> bool:
        """Active and not merged away (``UserQuerySet.live`` for querysets)."""
        return self.is_active and self.merged_into_id is None

    @property
    def display_name(self) -> str:
        return self.name or self.get_full_name() or self.email or self.username


class IdentityDetails(models.Model):
    """What the provider reported about one identity, as it reported it.

    ``email_verified`` follows the strict per-provider rule in docs/architecture.md; it is what
    suggested linking trusts, so it is never set from anything but the provider's own answer.
    """

    identity = models.OneToOneField(UserSocialAuth, on_delete=models.CASCADE, related_name="details")
    account_name = models.CharField(max_length=255, blank=True, help_text="Login or name at the provider.")
    email = models.EmailField(max_length=254, blank=True)
    email_verified = models.BooleanField(default=False)
    avatar_url = models.URLField(max_length=500, blank=True)
    created_profile = models.BooleanField(
        default=False, help_text="This identity's first sign-in created the profile."
    )
    is_default = models.BooleanField(
        default=False, help_text="The account used for this provider when a caller does not pick one."
    )
    linked_at = models.DateTimeField(auto_now_add=True)
    last_login_at = models.DateTimeField(null=True, blank=True)
    issuer = models.CharField(
        max_length=500,
        blank=True,
        help_text="The issuer this identity was made under (OpenID Connect iss); a sign-in from "
        "another issuer never matches it. Empty for providers with one fixed issuer.",
    )

    class Meta:
        verbose_name = "identity details"
        verbose_name_plural = "identity details"
        # Suggested linking looks profiles up by verified email on every connections page: an index
        # of just the verified ones keeps that a lookup at any number of people (bench plans).
        indexes = [
            models.Index(
                fields=["email"], condition=models.Q(email_verified=True), name="accounts_verified_email_idx"
            )
        ]

    def __str__(self) -> str:
        return f"{provider_title(self.identity.provider)}: {self.account_name or self.identity.uid}"


class UserSession(models.Model):
    """The session keys a user signed in with, so that all of them can be ended (e.g. on merge).

    Django's session stores cannot be searched by user; this small index can.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sessions")
    session_key = models.CharField(max_length=40, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # What the sessions page shows (accounts.sessions); empty for sessions indexed before it.
    user_agent = models.CharField(max_length=500, null=True, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"session of user {self.user_id}"
