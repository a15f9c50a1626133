"""Linking and unlinking identities: the logic behind the connections page, the admin and commands.

Views call these functions; they hold the rules and the transactions. The OAuth round trip itself
is social-auth's; ``start_flow`` records who started it and why, and the pipeline steps in
``accounts.pipeline`` check that record when the provider sends the browser back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from django.db import transaction
from django.http import HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme
from social_core.exceptions import AuthPolicyError
from social_django.models import UserSocialAuth
from social_django.utils import load_backend, load_strategy

from . import sudo
from .locking import lock_identities, lock_profiles
from .models import IdentityDetails, User
from .providers import Provider, configured_providers, is_configured

FlowPurpose = Literal["signin", "link", "reauth", "merge_proof"]
FLOW_SESSION_PREFIX = "auth_flow:"
# A sign-in stopped because its verified email matches another profile: who and what, no token.
PENDING_LINK_SESSION_KEY = "pending_link"
PENDING_LINK_SECONDS = 900


class LinkingError(Exception):
    """A linking operation was refused; ``str()`` is a message to show the person."""

    code = "linking_error"


class IdentityNotFound(LinkingError):
    code = "identity_not_found"


class LastSignInMethod(LinkingError):
    code = "last_sign_in_method"


def safe_next_url(candidate: str | None, *, default: str = "/settings/connections/") -> str:
    """Only same-site relative paths are followed; anything else becomes ``default``."""
    if not candidate or not isinstance(candidate, str):
        return default
    if not candidate.startswith("/") or candidate.startswith("//") or "\\" in candidate:
        return default
    if not url_has_allowed_host_and_scheme(candidate, allowed_hosts=None, require_https=False):
        return default
    return candidate


class SudoRequired(LinkingError):
    """Linking another account needs a recent sign-in (sudo mode)."""

    code = "sudo_required"


def flow_purpose(request: HttpRequest, *, requested: str | None) -> FlowPurpose:
    """What a begin POST starts: a sign-in when signed out; a re-authentication or a merge proof
    when asked for; otherwise linking another account, which needs sudo mode (``SudoRequired``)."""
    if not request.user.is_authenticated:
        return "signin"
    if requested == "reauth":
        return "reauth"
    if requested == "merge_proof":
        return "merge_proof"
    if not sudo.is_recent(request):
        raise SudoRequired("Please confirm it's you before connecting another account.")
    return "link"


def pending_link(session) -> dict | None:
    """The sign-in stopped at the "a profile with this email exists" question, while still fresh."""
    pending = session.get(PENDING_LINK_SESSION_KEY)
    if not isinstance(pending, dict) or time.time() - pending.get("at", 0) > PENDING_LINK_SECONDS:
        return None
    return pending


def start_flow(
    request: HttpRequest,
    *,
    backend_name: str,
    purpose: FlowPurpose,
    next_url: str,
    scopes: list[str] | None = None,
    fresh: bool = False,
    separate_profile: bool = False,
) -> None:
    """Bind the provider round trip about to start to this session and this user.

    The callback's pipeline compares the finishing user with ``user_id`` and refuses a mismatch;
    social-auth's one-time ``state`` binds it to this browser session.
    """
    flow = {
        "user_id": request.user.pk if request.user.is_authenticated else None,
        "purpose": purpose,
        "next": next_url,
        "scopes": list(scopes or []),
        "started_at": int(time.time()),
    }
    pending = pending_link(request.session)
    if separate_profile and pending is not None and pending.get("provider") == backend_name:
        # The person answered "create a separate profile" for exactly this provider account.
        flow["separate_uid"] = [backend_name, pending.get("uid")]
    request.session[FLOW_SESSION_PREFIX + backend_name] = flow
    # Read by the backends' auth_extra_arguments to force a fresh sign-in at the provider.
    request.session["auth_flow_fresh"] = fresh or purpose in ("reauth", "merge_proof")


def identities_for(user: User) -> list[UserSocialAuth]:
    """The user's identities with their details, oldest first, in one query."""
    return list(UserSocialAuth.objects.filter(user=user).select_related("details").order_by("created", "pk"))


def get_identity(*, user: User, identity_id: int | str) -> UserSocialAuth:
    """The user's own identity by id; someone else's id is answered exactly like an unknown one."""
    try:
        return UserSocialAuth.objects.select_related("details").get(pk=int(identity_id), user=user)
    except (UserSocialAuth.DoesNotExist, ValueError, TypeError):
        raise IdentityNotFound("That linked account was not found on your profile.") from None


def sign_in_methods_left(*, user: User, without: UserSocialAuth) -> int:
    """How many ways to sign in remain if ``without`` goes (other identities, a usable password)."""
    others = UserSocialAuth.objects.filter(user=user).exclude(pk=without.pk).count()
    return others + (1 if user.has_usable_password() else 0)


def check_can_disconnect(*, user: User, identity: UserSocialAuth) -> None:
    if sign_in_methods_left(user=user, without=identity) == 0:
        raise LastSignInMethod(
            "This is your only way to sign in. Connect another account first, then remove this one."
        )


@dataclass(frozen=True)
class UnlinkResult:
    provider: str
    uid: str
    account_name: str
    dry_run: bool


def unlink_identity(
    *,
    user: User,
    identity_id: int | str,
    actor: User | None = None,
    request: HttpRequest | None = None,
    dry_run: bool = False,
    staff_repair: bool = False,
) -> UnlinkResult:
    """Remove exactly one identity from ``user`` through social-auth's disconnect pipeline.

    The pipeline (SOCIAL_AUTH_DISCONNECT_PIPELINE) checks the last-method rule, lets the vault
    schedule revocation of the identity's tokens, deletes the row and records the activity, all in
    one transaction: a refusal or failure leaves the identity exactly as it was.

    ``staff_repair`` (the admin and ``accounts_unlink``) may also remove an identity left on a
    merged-away or deactivated profile (issue 20.3); such a profile cannot sign in, so the
    last-method rule does not apply to it. People never find identities of a retired profile.
    """
    with transaction.atomic():
        # The lock order (``accounts.locking``): the profile, then its identities; the vault's
        # step locks the token set last. A merge or a refresh takes the same rows in the same
        # order, so each waits for the other and sees what it did.
        locked = lock_profiles([user.pk]).get(user.pk)
        if locked is None or (not locked.is_active and not staff_repair):
            raise IdentityNotFound("That linked account was not found on your profile.")
        lock_identities(user_ids=[user.pk])
        identity = get_identity(user=user, identity_id=identity_id)
        if locked.is_active:
            check_can_disconnect(user=locked, identity=identity)
        details = getattr(identity, "details", None)
        result = UnlinkResult(
            provider=identity.provider,
            uid=identity.uid,
            account_name=details.account_name if details else "",
            dry_run=dry_run,
        )
        if dry_run:
            return result
        strategy = load_strategy(request)
        if is_configured(identity.provider):
            backend = load_backend(strategy, identity.provider, redirect_uri=None)
        else:
            # Issue 20.1: a provider removed from the settings has no backend, but its identities
            # must still be removable by their owner (the vault erases the tokens it cannot revoke).
            from .removed import RemovedProvider

            backend = RemovedProvider(strategy, name=identity.provider)
        try:
            backend.disconnect(
                user=locked, association_id=identity.pk, actor=actor, staff_repair=staff_repair
            )
        except AuthPolicyError as error:
            raise LastSignInMethod(str(error)) from error
    return result


def set_default_identity(*, user: User, identity_id: int | str) -> UserSocialAuth:
    """Make one identity the account used for its provider when a caller does not pick one."""
    with transaction.atomic():
        identity = get_identity(user=user, identity_id=identity_id)
        IdentityDetails.objects.filter(identity__user=user, identity__provider=identity.provider).update(
            is_default=False
        )
        IdentityDetails.objects.update_or_create(identity=identity, defaults={"is_default": True})
    return identity


def provider_is_available(backend_name: str) -> bool:
    return is_configured(backend_name)


class UserNotFound(LinkingError):
    code = "user_not_found"


def resolve_user(reference: str) -> User:
    """Find a user by id, username or email (for staff commands); ambiguity is an error."""
    reference = str(reference).strip()
    if reference.isdigit():
        user = User.objects.filter(pk=int(reference)).first()
        if user:
            return user
    matches = list(User.objects.filter(username=reference)[:2]) or list(
        User.objects.filter(email__iexact=reference)[:2]
    )
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise UserNotFound(f"More than one user matches {reference!r}; use the numeric user id.")
    raise UserNotFound(f"No user matches {reference!r}.")


def staff_actor(reference: str) -> User:
    """The staff member a command is run as (``--actor``): recorded as the one who did it."""
    actor = resolve_user(reference)
    if not actor.is_staff:
        raise UserNotFound(f"{reference!r} is not a staff member.")
    return actor


def sign_in_options_for_profiles(profile_ids: list[int]) -> list[Provider]:
    """The configured providers those profiles can sign in with (shown on the suggestion page)."""
    providers = set(
        UserSocialAuth.objects.filter(user_id__in=profile_ids, user__is_active=True).values_list(
            "provider", flat=True
        )
    )
    return [p for p in configured_providers() if p.name in providers]


def identity_matching_hint(*, user_id: int, provider: str, hint: str) -> int | None:
    """The user's identity of ``provider`` named by a login hint: its id, uid, login/name or email.

    Compared case-insensitively; None when nothing of the user's matches (another user's accounts
    are never searched).
    """
    wanted = hint.strip().lower()
    if not wanted:
        return None
    for identity in UserSocialAuth.objects.filter(user_id=user_id, provider=provider).select_related(
        "details"
    ):
        details = getattr(identity, "details", None)
        names = {str(identity.pk), identity.uid.lower()}
        if details is not None:
            names |= {details.account_name.lower(), details.email.lower()}
        if wanted in names - {""}:
            return identity.pk
    return None
