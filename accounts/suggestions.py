"""Which profiles share a verified email: the only basis for suggesting a link or a merge.

Addresses are stored as the backends normalise them (domain lower-cased, nothing else), so they
compare exactly. Only identities whose provider verified the address count, on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass

from .models import IdentityDetails, User, live_profile_filter


def profiles_with_verified_email(email: str, *, exclude_user_id: int | None = None) -> list[User]:
    """Active, unmerged profiles with an identity whose provider verified exactly ``email``."""
    if not email:
        return []
    query = User.profiles.live().filter(
        social_auth__details__email=email,
        social_auth__details__email_verified=True,
    )
    if exclude_user_id is not None:
        query = query.exclude(pk=exclude_user_id)
    return list(query.distinct().order_by("pk"))


def verified_emails_of(user: User) -> set[str]:
    return set(
        IdentityDetails.objects.filter(identity__user=user, email_verified=True)
        .exclude(email="")
        .values_list("email", flat=True)
    )


@dataclass(frozen=True)
class Suggestion:
    """Another profile sharing a verified email. Only its providers are shown to the person."""

    other_user_id: int
    providers: tuple[str, ...]


def suggestions_for(user: User) -> list[Suggestion]:
    """Other profiles sharing a verified email with ``user`` (for the connections page)."""
    emails = verified_emails_of(user)
    if not emails:
        return []
    rows = (
        IdentityDetails.objects.filter(email__in=emails, email_verified=True)
        .exclude(identity__user=user)
        .filter(live_profile_filter("identity__user"))
        .values_list("identity__user_id", "identity__provider")
    )
    by_user: dict[int, set[str]] = {}
    for user_id, provider in rows:
        by_user.setdefault(user_id, set()).add(provider)
    return [Suggestion(uid, tuple(sorted(p))) for uid, p in sorted(by_user.items())]


@dataclass(frozen=True)
class SharedEmailPair:
    email: str
    user_ids: tuple[int, ...]


def all_shared_verified_emails() -> list[SharedEmailPair]:
    """Every verified email held by identities of more than one active profile (for staff)."""
    rows = (
        IdentityDetails.objects.filter(email_verified=True)
        .exclude(email="")
        .filter(live_profile_filter("identity__user"))
        .values_list("email", "identity__user_id")
        .order_by("email", "identity__user_id")
    )
    grouped: dict[str, set[int]] = {}
    for email, user_id in rows:
        grouped.setdefault(email, set()).add(user_id)
    return [SharedEmailPair(email, tuple(sorted(ids))) for email, ids in grouped.items() if len(ids) > 1]
