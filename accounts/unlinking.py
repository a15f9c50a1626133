"""Removing one identity from a profile: the last-method rule and the one transaction that does it.

The connections page, the admin and ``accounts_unlink`` all call ``unlink_identity``; the work
itself runs through social-auth's disconnect pipeline (``accounts.disconnect_pipeline``).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.http import HttpRequest
from social_core.exceptions import AuthPolicyError
from social_django.models import UserSocialAuth
from social_django.utils import load_backend, load_strategy

from .exceptions import IdentityNotFound, LastSignInMethod
from .identities import get_identity
from .locking import lock_identities, lock_profiles
from .models import User
from .providers import is_configured
from .removed import RemovedProvider


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
        if locked is None or (not locked.is_live and not staff_repair):
            raise IdentityNotFound("That linked account was not found on your profile.")
        lock_identities(user_ids=[user.pk])
        identity = get_identity(user=user, identity_id=identity_id)
        if locked.is_live:
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
            backend = RemovedProvider(strategy, name=identity.provider)
        try:
            backend.disconnect(
                user=locked, association_id=identity.pk, actor=actor, staff_repair=staff_repair
            )
        except AuthPolicyError as error:
            raise LastSignInMethod(str(error)) from error
    return result
