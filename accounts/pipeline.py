"""social-auth pipeline steps for sign-in, linking and disconnecting.

They run inside social-auth's callback (``SOCIAL_AUTH_PIPELINE``) and disconnect
(``SOCIAL_AUTH_DISCONNECT_PIPELINE``) as listed in settings, between social-auth's own lookup steps.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.http import HttpResponseRedirect
from django.utils import timezone
from social_core.exceptions import AuthAssociationError, AuthPolicyError, AuthSessionError
from social_django.models import UserSocialAuth

from activity import recording

from . import merging, notifications, sudo
from .activity_kinds import AccountKind
from .linking import FLOW_SESSION_PREFIX, PENDING_LINK_SESSION_KEY, sign_in_methods_left
from .locking import InactiveProfile, lock_active_profile
from .models import IdentityDetails, User
from .providers import provider_title
from .suggestions import profiles_with_verified_email

# Never kept in ``extra_data``: the vault keeps tokens, encrypted.
SECRET_EXTRA_DATA_KEYS = frozenset(
    {
        "access_token",
        "refresh_token",
        "id_token",
        "token_type",
        "expires_in",
        "expires",
        "auth_time",
        "code",
        "client_secret",
    }
)


class FlowRefused(AuthAssociationError):
    """A completed provider round trip that this site refuses to act on."""

    # social-core looks the default up in its own table of reasons; ours pass their own ``code``.
    default_code = "authentication_disallowed"


def check_flow_owner(strategy, backend, user: User | None = None, *args, **kwargs) -> dict[str, Any]:
    """Refuse a callback finished by someone other than whoever started the flow."""
    flow = strategy.session_get(FLOW_SESSION_PREFIX + backend.name)
    if not isinstance(flow, dict):
        raise AuthSessionError(backend, code="session_context_missing", stage="pipeline")
    finishing_user_id = user.pk if user is not None else None
    if flow.get("user_id") != finishing_user_id:
        raise AuthSessionError(backend, code="user_mismatch", stage="pipeline")
    # Linking was allowed because the sign-in was recent when it started; it must not be finished
    # long after that window closed (an abandoned tab).
    if flow.get("purpose") == "link" and time.time() - flow.get("started_at", 0) > settings.SUDO_MODE_SECONDS:
        raise AuthSessionError(backend, code="link_flow_expired", stage="pipeline")
    return {"flow": flow}


def capture_merge_proof(
    strategy, backend, uid: str, flow: dict[str, Any], user: User | None = None, *args, **kwargs
) -> HttpResponseRedirect | None:
    """In a merge, signing in with the other profile's identity proves control of it.

    Runs before ``social_user`` (which would refuse an identity owned by someone else). It never
    signs the person in to the other profile; it only remembers the proof for the review page.
    """
    if flow.get("purpose") != "merge_proof":
        return None
    if user is None:
        raise AuthSessionError(backend, code="user_mismatch", stage="pipeline")
    social = UserSocialAuth.objects.select_related("user").filter(provider=backend.name, uid=str(uid)).first()
    if social is None:
        raise FlowRefused(backend, code="merge_unknown_identity", stage="pipeline")
    if social.user_id == user.pk:
        raise FlowRefused(backend, code="merge_same_profile", stage="pipeline")
    if not social.user.is_active or social.user.merged_into_id is not None:
        raise FlowRefused(backend, code="merge_inactive_profile", stage="pipeline")
    request = strategy.request
    if request is None or not merging.record_source_proof(request.session, into_id=user.pk, identity=social):
        raise FlowRefused(backend, code="merge_flow_expired", stage="pipeline")
    strategy.session_pop(FLOW_SESSION_PREFIX + backend.name)
    strategy.session_pop("auth_flow_fresh")
    recording.record(
        kind=AccountKind.REAUTHENTICATED,
        user=social.user,
        request=request,
        identity=social,
        message=f"Proved control of this profile to merge it into profile {user.pk}",
    )
    return HttpResponseRedirect("/settings/merge/review/")


def suggest_existing_profile(
    strategy,
    backend,
    uid: str,
    response: dict[str, Any],
    flow: dict[str, Any],
    user: User | None = None,
    social=None,
    *args,
    **kwargs,
) -> HttpResponseRedirect | None:
    """A first sign-in whose verified email matches another profile's stops at a question.

    Nothing is created and nobody is signed in; the session keeps who and what (no token), and
    the provider round trip is simply done again for whichever answer the person gives.
    """
    if user is not None or social is not None or flow.get("purpose") != "signin":
        return None
    if flow.get("separate_uid") == [backend.name, str(uid)]:
        return None
    email, verified = backend.verified_email(response)
    if not verified:
        return None
    owners = profiles_with_verified_email(email)
    if not owners:
        return None
    strategy.session_set(
        PENDING_LINK_SESSION_KEY,
        {
            "provider": backend.name,
            "uid": str(uid),
            "email": email,
            "account_name": backend.account_name(response)[:255],
            "profile_ids": [owner.pk for owner in owners],
            "at": int(time.time()),
        },
    )
    strategy.session_pop(FLOW_SESSION_PREFIX + backend.name)
    strategy.session_pop("auth_flow_fresh")
    return HttpResponseRedirect("/signin/existing-profile/")


def check_flow_purpose(
    backend, flow: dict[str, Any], user: User | None = None, social=None, *args, **kwargs
) -> None:
    """A re-authentication must use an identity that is already the user's own."""
    if flow.get("purpose") == "reauth" and (social is None or user is None or social.user_id != user.pk):
        raise FlowRefused(backend, code="reauth_unknown_identity", stage="pipeline")


def create_user(
    backend, details: dict[str, Any], response: dict[str, Any], user: User | None = None, *args, **kwargs
) -> dict[str, Any]:
    """Create the primary profile from the first identity: name, email and avatar."""
    if user is not None:
        return {"is_new": False}
    email, verified = backend.verified_email(response)
    name = (details.get("fullname") or "").strip() or backend.account_name(response)
    new_user = User.objects.create_user(
        username=kwargs["username"],
        # Only an address the provider verified becomes the profile's: notices go there, and
        # anyone can type someone else's address into an account that does not verify it.
        email=email if verified else "",
        name=name[:255],
        first_name=(details.get("first_name") or "")[:150],
        last_name=(details.get("last_name") or "")[:150],
        avatar_url=backend.avatar_url(response)[:500],
    )
    return {"is_new": True, "user": new_user}


def lock_profile(backend, user: User | None = None, *args, **kwargs) -> None:
    """Before an identity is attached: lock the profile (the lock order's first step) and refuse
    when it was merged away or deactivated since the round trip started (issue 20.3). A merge
    holds this lock while it moves identities, so a link either lands first and is moved with
    the rest, or sees the retired profile here."""
    if user is None or user.pk is None:
        return
    try:
        lock_active_profile(user.pk)
    except InactiveProfile:
        raise FlowRefused(backend, code="profile_inactive", stage="pipeline") from None


def save_identity_details(
    strategy,
    backend,
    uid: str,
    user: User,
    social,
    response: dict[str, Any],
    details: dict[str, Any],
    flow: dict[str, Any],
    is_new: bool = False,
    new_association: bool = False,
    *args,
    **kwargs,
) -> dict[str, Any]:
    """Record what the provider reported (display fields only) and the activity.

    Replaces social-auth's ``load_extra_data``: ``extra_data`` gets only non-secret fields, so
    no token is ever written in plaintext.
    """
    email, verified = backend.verified_email(response)
    now = timezone.now()
    purpose = flow.get("purpose")
    extra = backend.extra_data(user, uid, response, details, kwargs)
    safe_extra = {key: value for key, value in extra.items() if key not in SECRET_EXTRA_DATA_KEYS}
    if social.extra_data != safe_extra:
        social.extra_data = safe_extra
        social.save(update_fields=["extra_data", "modified"])

    identity_details, created = IdentityDetails.objects.get_or_create(identity=social)
    identity_details.account_name = backend.account_name(response)[:255]
    identity_details.email = email[:254]
    identity_details.email_verified = verified
    identity_details.avatar_url = backend.avatar_url(response)[:500]
    identity_issuer = getattr(backend, "identity_issuer", None)
    if callable(identity_issuer) and not identity_details.issuer:
        # Issue 20.1: bind the identity to the issuer that vouched for it (a mismatch was refused
        # before the pipeline, in the backend).
        identity_details.issuer = identity_issuer()[:500]
    if created:
        identity_details.created_profile = is_new
        identity_details.is_default = not IdentityDetails.objects.filter(
            identity__user=user, identity__provider=social.provider, is_default=True
        ).exists()
    if purpose in ("signin", "reauth"):
        identity_details.last_login_at = now
    identity_details.save()

    request = strategy.request
    title = provider_title(backend.name)
    if new_association:
        recording.record(
            kind=AccountKind.LINKED,
            user=user,
            request=request,
            identity=social,
            message=f"{'Signed up with' if is_new else 'Linked'} {title} account "
            f"{identity_details.account_name}",
        )
        if not is_new:
            transaction.on_commit(lambda: notifications.identity_linked(user=user, identity=social))
    elif purpose == "reauth":
        recording.record(
            kind=AccountKind.REAUTHENTICATED,
            user=user,
            request=request,
            identity=social,
            message=f"Confirmed with {title}",
        )
    elif purpose == "signin":
        recording.record(
            kind=AccountKind.SIGNED_IN,
            user=user,
            request=request,
            identity=social,
            message=f"Signed in with {title}",
        )
    return {"identity_details": identity_details}


def finish_flow(
    strategy,
    backend,
    user: User,
    social,
    flow: dict[str, Any],
    new_association: bool = False,
    is_new: bool = False,
    *args,
    **kwargs,
) -> None:
    """Close the flow record, refresh sudo mode for real sign-ins, and say what happened."""
    strategy.session_pop(FLOW_SESSION_PREFIX + backend.name)
    strategy.session_pop("auth_flow_fresh")
    strategy.session_set("next", flow.get("next") or "/settings/connections/")
    request = strategy.request
    purpose = flow.get("purpose")
    if request is None:
        return
    if purpose in ("signin", "reauth"):
        sudo.mark_authenticated(request)
    if purpose == "reauth":
        merging.record_into_proof(request.session, user.pk)
    pending = request.session.get(PENDING_LINK_SESSION_KEY)
    if isinstance(pending, dict) and [pending.get("provider"), pending.get("uid")] == [
        backend.name,
        social.uid,
    ]:
        request.session.pop(PENDING_LINK_SESSION_KEY, None)  # the suggested link is done (or declined)
    title = provider_title(backend.name)
    name = getattr(getattr(social, "details", None), "account_name", "") or social.uid
    if purpose == "link":
        if new_association:
            messages.success(request, f"Linked your {title} account {name}.")
        else:
            messages.info(request, f"Your {title} account {name} was already linked to this profile.")
    elif purpose == "reauth":
        messages.success(request, f"Confirmed it's you with {title}.")
    elif is_new:
        messages.success(request, f"Welcome! Your profile was created from your {title} account {name}.")


# --- Disconnect pipeline --------------------------------------------------------------------------


def allowed_to_disconnect(backend, user: User, association_id=None, *args, **kwargs) -> None:
    """Never leave a user without a way to sign in (our rule, by identity id, not per provider)."""
    if association_id is None:
        raise AuthPolicyError(backend, code="disconnect_disallowed", stage="disconnect")
    if not user.is_active and kwargs.get("staff_repair"):
        return  # staff removing an identity left on a retired profile: it cannot sign in anyway
    entries = user.social_auth.filter(pk=association_id)
    for entry in entries:
        if sign_in_methods_left(user=user, without=entry) == 0:
            raise AuthPolicyError(backend, code="disconnect_disallowed", stage="disconnect")


def disconnect(strategy, backend, entries, user: User, actor: User | None = None, *args, **kwargs) -> None:
    """Delete the identities, then record and announce it (the vault step ran before this one)."""
    request = strategy.request
    for entry in entries:
        details = IdentityDetails.objects.filter(identity=entry).first()
        account_name = details.account_name if details else entry.uid
        title = provider_title(entry.provider)
        identity_id = entry.pk
        recording.record(
            kind=AccountKind.UNLINKED,
            user=user,
            actor=actor,
            request=request,
            identity=entry,
            message=f"Removed {title} account {account_name}" + (f" (by staff {actor})" if actor else ""),
        )
        provider, uid = entry.provider, entry.uid
        entry.delete()
        transaction.on_commit(
            lambda provider=provider, uid=uid, account_name=account_name, identity_id=identity_id: (
                notifications.identity_removed(
                    user=user, provider=provider, uid=uid, account_name=account_name
                )
            )
        )
