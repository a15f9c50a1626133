"""social-auth pipeline steps for sign-in and linking.

They run inside social-auth's callback (``SOCIAL_AUTH_PIPELINE``) as listed in settings, between
social-auth's own lookup steps; the disconnect steps are ``accounts.disconnect_pipeline``. The flow
record they check is ``accounts.flow_state.AuthFlow``.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from social_core.exceptions import AuthAssociationError, AuthSessionError
from social_django.models import UserSocialAuth

from activity import recording

from . import flow_state, merge_flow, notifications, sudo
from .activity_kinds import AccountKind
from .flow_state import AuthFlow, PendingLink
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
    flow = flow_state.auth_flow(strategy.session, backend.name)
    if flow is None:
        raise AuthSessionError(backend, code="session_context_missing", stage="pipeline")
    finishing_user_id = user.pk if user is not None else None
    if flow.user_id != finishing_user_id:
        raise AuthSessionError(backend, code="user_mismatch", stage="pipeline")
    # Linking was allowed because the sign-in was recent when it started; it must not be finished
    # long after that window closed (an abandoned tab).
    if flow.purpose == "link" and time.time() - flow.started_at > settings.SUDO_MODE_SECONDS:
        raise AuthSessionError(backend, code="link_flow_expired", stage="pipeline")
    return {"flow": flow}


def capture_merge_proof(
    strategy, backend, uid: str, flow: AuthFlow, user: User | None = None, *args, **kwargs
) -> HttpResponseRedirect | None:
    """In a merge, signing in with the other profile's identity proves control of it.

    Runs before ``social_user`` (which would refuse an identity owned by someone else). It never
    signs the person in to the other profile; it only remembers the proof for the review page.
    """
    if flow.purpose != "merge_proof":
        return None
    if user is None:
        raise AuthSessionError(backend, code="user_mismatch", stage="pipeline")
    social = UserSocialAuth.objects.select_related("user").filter(provider=backend.name, uid=str(uid)).first()
    if social is None:
        raise FlowRefused(backend, code="merge_unknown_identity", stage="pipeline")
    if social.user_id == user.pk:
        raise FlowRefused(backend, code="merge_same_profile", stage="pipeline")
    if not social.user.is_live:
        raise FlowRefused(backend, code="merge_inactive_profile", stage="pipeline")
    request = strategy.request
    if request is None or not merge_flow.record_source_proof(
        request.session, into_id=user.pk, identity=social
    ):
        raise FlowRefused(backend, code="merge_flow_expired", stage="pipeline")
    flow_state.pop_auth_flow(strategy.session, backend.name)
    recording.record(
        kind=AccountKind.REAUTHENTICATED,
        user=social.user,
        request=request,
        identity=social,
        message=f"Proved control of this profile to merge it into profile {user.pk}",
    )
    return HttpResponseRedirect(reverse("accounts:merge_review"))


def suggest_existing_profile(
    strategy,
    backend,
    uid: str,
    response: dict[str, Any],
    flow: AuthFlow,
    user: User | None = None,
    social=None,
    *args,
    **kwargs,
) -> HttpResponseRedirect | None:
    """A first sign-in whose verified email matches another profile's stops at a question.

    Nothing is created and nobody is signed in; the session keeps who and what (no token), and
    the provider round trip is simply done again for whichever answer the person gives.
    """
    if user is not None or social is not None or flow.purpose != "signin":
        return None
    if flow.separate_uid == [backend.name, str(uid)]:
        return None
    email, verified = backend.verified_email(response)
    if not verified:
        return None
    owners = profiles_with_verified_email(email)
    if not owners:
        return None
    pending = PendingLink(
        provider=backend.name,
        uid=str(uid),
        email=email,
        account_name=backend.account_name(response)[:255],
        profile_ids=[owner.pk for owner in owners],
        at=int(time.time()),
    )
    flow_state.save_pending_link(strategy.session, pending)
    flow_state.pop_auth_flow(strategy.session, backend.name)
    return HttpResponseRedirect(reverse("accounts:existing_profile"))


def check_flow_purpose(
    backend, flow: AuthFlow, user: User | None = None, social=None, *args, **kwargs
) -> None:
    """A re-authentication must use an identity that is already the user's own."""
    if flow.purpose == "reauth" and (social is None or user is None or social.user_id != user.pk):
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
    flow: AuthFlow,
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
    purpose = flow.purpose
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

    _record_identity_use(
        strategy.request,
        user=user,
        social=social,
        account_name=identity_details.account_name,
        purpose=purpose,
        is_new=is_new,
        new_association=new_association,
    )
    return {"identity_details": identity_details}


def _record_identity_use(
    request, *, user: User, social, account_name: str, purpose: str, is_new: bool, new_association: bool
) -> None:
    """The activity record of a completed round trip: linked (and the owner told), confirmed, or
    signed in."""
    title = provider_title(social.provider)
    if new_association:
        recording.record(
            kind=AccountKind.LINKED,
            user=user,
            request=request,
            identity=social,
            message=f"{'Signed up with' if is_new else 'Linked'} {title} account {account_name}",
        )
        if not is_new:
            transaction.on_commit(lambda: notifications.identity_linked(user=user, identity=social))
    elif purpose == "reauth":
        kind, message = AccountKind.REAUTHENTICATED, f"Confirmed with {title}"
        recording.record(kind=kind, user=user, request=request, identity=social, message=message)
    elif purpose == "signin":
        kind, message = AccountKind.SIGNED_IN, f"Signed in with {title}"
        recording.record(kind=kind, user=user, request=request, identity=social, message=message)


def finish_flow(
    strategy,
    backend,
    user: User,
    social,
    flow: AuthFlow,
    new_association: bool = False,
    is_new: bool = False,
    *args,
    **kwargs,
) -> None:
    """Close the flow record, refresh sudo mode for real sign-ins, and say what happened."""
    flow_state.pop_auth_flow(strategy.session, backend.name)
    flow_state.set_next_after_complete(strategy.session, flow.next or reverse("accounts:connections"))
    request = strategy.request
    purpose = flow.purpose
    if request is None:
        return
    if purpose in ("signin", "reauth"):
        sudo.mark_authenticated(request)
    if purpose == "reauth":
        merge_flow.record_into_proof(request.session, user.pk)
    pending = flow_state.pending_link(request.session)
    if pending is not None and pending.is_for(backend.name, social.uid):
        flow_state.clear_pending_link(request.session)  # the suggested link is done (or declined)
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
