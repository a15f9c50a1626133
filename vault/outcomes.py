"""The outcome writer: what a provider refresh came to, written to its token set (through the
``TokenSet`` transitions), recorded as activity and logged, with the error the caller gets.

One writer for both refresh strategies and the narrowed refresh, so "a refresh succeeded", "the
provider refused" and "the provider is down" each mean the same row, record and error everywhere.
"""

from __future__ import annotations

import logging

from django.db import transaction
from social_django.models import UserSocialAuth

from accounts.providers import provider_title
from activity import recording

from . import errors
from .activity_kinds import VaultKind
from .capture import narrowed_message
from .locking import lock_token_set_chain
from .models import TokenSet
from .provider_calls import Outcome, RefreshContext
from .responses import parse_token_response
from .stored import flag_vault_fault, gone_error, kept_refresh_token, reauth_error

logger = logging.getLogger(__name__)

#: After the provider rejected this site's client credentials, refresh pauses this long.
MISCONFIGURED_PAUSE = 60


def record_refresh(
    token_set: TokenSet,
    ctx: RefreshContext,
    *,
    message: str,
    data: dict,
    kind: str = VaultKind.REFRESH_FAILED,
) -> None:
    recording.record(
        kind=kind,
        user=ctx.owner,
        actor=ctx.actor,
        provider=token_set.provider,
        uid=token_set.uid,
        message=message,
        data=data,
    )


def mark_reconnect_required(token_set: TokenSet, ctx: RefreshContext, *, code: str) -> None:
    """An expired token nothing can renew: the set says "reconnect", and the owner is told."""
    token_set.mark_reconnect_required(code=code)
    title = provider_title(token_set.provider)
    record_refresh(
        token_set,
        ctx,
        message=f"The {title} token expired and cannot be renewed; reconnect the account",
        data={"token_set": token_set.pk, "code": code},
    )


def record_failed_call(token_set: TokenSet, outcome: Outcome, ctx: RefreshContext) -> errors.TokenVaultError:
    """A failed narrowing refresh is recorded like any failed refresh (reconnect, pause, staff)."""
    with transaction.atomic():
        current = lock_token_set_chain(token_set_id=token_set.pk).token_set  # the one lock order
        if current is None or current.identity_id != ctx.identity_id:
            return gone_error(token_set, ctx.requested)
        return apply_outcome(current, outcome, ctx) or errors.ProviderUnavailable(
            connection=token_set.provider
        )


def apply_outcome(
    token_set: TokenSet, outcome: Outcome, ctx: RefreshContext
) -> errors.TokenVaultError | None:
    """Write the outcome to the (locked or leased) row and record activity; return the error to raise."""
    if outcome.kind == "success":
        _write_success(token_set, outcome, ctx)
        return None
    title = provider_title(token_set.provider)
    code = outcome.provider_code or outcome.code
    data = {
        "token_set": token_set.pk,
        "code": outcome.code,
        "provider_code": outcome.provider_code,
        "attempts": outcome.attempts,
    }
    if outcome.kind == "reauth":
        token_set.mark_reconnect_required(code=code)
        record_refresh(
            token_set, ctx, message=f"{title} refused to renew access; reconnect the account", data=data
        )
        logger.info(
            "Token set %s (%s): refresh refused (%s); reconnect required",
            token_set.pk,
            token_set.provider,
            token_set.last_error_code,
        )
        return reauth_error(token_set, ctx.requested)
    if outcome.kind == "config":
        token_set.note_refresh_error(code=code, retry_after=MISCONFIGURED_PAUSE)
        record_refresh(
            token_set,
            ctx,
            message=f"Could not renew {title} access: this site's {title} app settings were "
            "rejected (staff have been told)",
            data={**data, "staff": True},
        )
        logger.error(
            "Provider %s rejected this site's client credentials (%s) while refreshing token set %s: "
            "check its SOCIAL_AUTH_*_KEY/_SECRET",
            token_set.provider,
            token_set.last_error_code,
            token_set.pk,
        )
        return errors.ProviderMisconfigured(connection=token_set.provider)
    if outcome.kind == "vault":
        token_set.note_refresh_error(code=code)
        if outcome.code == "decryption_failed":
            # This row's value is bad (or the keys are): flag it, stop retrying until the keys
            # change (issue 12.5).
            flag_vault_fault(token_set, code=code)
        error_class = errors.VaultFault if outcome.code == "decryption_failed" else errors.VaultKeyError
        return error_class(
            connection=token_set.provider,
            authorize_url=errors.authorize_url(token_set.provider, ctx.requested),
        )
    token_set.note_refresh_error(code=code, retry_after=outcome.retry_after)
    record_refresh(
        token_set,
        ctx,
        message=f"{title} was unavailable; the token will be renewed later",
        data={**data, "retry_after": outcome.retry_after},
    )
    logger.warning(
        "Token set %s (%s): provider unavailable (%s) after %d attempt(s); retry after %d s",
        token_set.pk,
        token_set.provider,
        token_set.last_error_code,
        outcome.attempts,
        outcome.retry_after,
    )
    return errors.ProviderUnavailable(
        f"{title} is unavailable right now; try again in {outcome.retry_after} s.",
        retry_after=outcome.retry_after,
        connection=token_set.provider,
    )


def _write_success(token_set: TokenSet, outcome: Outcome, ctx: RefreshContext) -> None:
    tokens = parse_token_response(outcome.response or {}, received_at=outcome.received_at)
    # A refresh that names fewer scopes than stored narrows the grant (a person unticked a scope at the
    # provider, an admin policy changed): never silent, like a narrowing sign-in (``vault.capture``).
    lost = [scope for scope in token_set.scopes or [] if tokens.scopes and scope not in tokens.scopes]
    token_set.mark_active(
        response=tokens,
        refresh_token=tokens.refresh_token or kept_refresh_token(token_set, None),
        owner_id=ctx.owner.pk,
        # An absent or empty scope keeps what the grant had (RFC 6749 5.1).
        scopes=tokens.scopes or None,
        refreshed=True,
    )
    if lost:
        recording.record(
            kind=VaultKind.SCOPES_NARROWED,
            user=ctx.owner,
            provider=token_set.provider,
            uid=token_set.uid,
            identity_id=ctx.identity_id,
            message=narrowed_message(provider=token_set.provider, lost=lost),
            data={"lost": lost, "on": "refresh"},
        )
    if outcome.oidc_context:
        identity = UserSocialAuth.objects.get(pk=ctx.identity_id)
        identity.extra_data = {**(identity.extra_data or {}), **outcome.oidc_context}
        identity.save(update_fields=["extra_data", "modified"])
    record_refresh(
        token_set,
        ctx,
        kind=VaultKind.TOKEN_REFRESHED,
        message=f"Refreshed the {provider_title(token_set.provider)} token",
        data={
            "token_set": token_set.pk,
            "attempts": outcome.attempts,
            "expires_in": tokens.expires_in,
            "rotated_refresh_token": bool(tokens.refresh_token),
        },
    )
    logger.info(
        "Refreshed token set %s (%s) in %d attempt(s)", token_set.pk, token_set.provider, outcome.attempts
    )
