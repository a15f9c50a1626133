"""The vault's public Python API: ``get_access_token`` hands out a provider access token.

``get_access_token`` is the one place a plaintext access token leaves the vault (the agent API's
hot path, ``stored_access_token``, applies the very same checks). Everything that holds plaintext
here runs under ``sensitive_variables`` so Django's error reports show stars, and errors raised to
callers are the vault's own (``vault.errors``) with the provider's exception chain cut off, so no
frame of social-core (which holds the refresh token) ends up in a report. The scope-limit rule
(``enforce_scope_limit``) is here because it decides what is handed out. Refreshing is
``vault.refresh``; storing what arrives is ``vault.capture``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from accounts.models import User
from accounts.providers import holds_tokens, provider_title

from . import errors
from . import scopes as scope_rules
from .hotpath import ResolvedAccount, find_account
from .limits import MAX_MIN_TTL
from .models import TokenSet
from .outcomes import record_failed_call
from .provider_calls import RefreshContext, call_provider
from .refresh import refresh
from .responses import is_plausible_access_token, parse_token_response
from .stored import (
    decrypt_access_token,
    fault_error,
    fault_may_have_cleared,
    flag_vault_fault,
    keyring_or_raise,
    needs_refresh,
    reauth_error,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AccessToken:
    """What ``get_access_token`` hands out. ``repr`` never shows the token."""

    access_token: str = field(repr=False)
    token_type: str
    expires_at: datetime | None
    expires_in: int | None
    scopes: tuple[str, ...]
    connection: str
    account: int
    account_name: str = ""


@sensitive_variables()
def get_access_token(
    user: User,
    connection: str,
    *,
    scopes: Iterable[str] | str = (),
    account: int | str | None = None,
    min_ttl: int = 60,
    limit: scope_rules.ScopeLimit | None = None,
) -> AccessToken:
    """A provider access token for ``user``'s ``connection`` account, valid for ``min_ttl`` seconds.

    ``account`` picks one of several accounts of that provider by identity id (the user's own;
    another user's id is answered exactly like an unknown one); without it the account marked
    default is used. Refreshes first when the token expires within ``min_ttl`` seconds, unless
    ``min_ttl`` is longer than a fresh token would live (then the token is answered with its real,
    shorter ``expires_in``; see ``vault.stored.needs_refresh``). ``limit`` is what the caller (an
    agent key, an OAuth client) may hold: a wider grant is narrowed or refused
    (``enforce_scope_limit``). Raises a ``vault.errors.TokenVaultError`` subclass with a stable
    ``code`` otherwise.

    Call it outside a transaction: a refresh commits the new tokens before this returns, which an
    enclosing transaction would delay.
    """
    if user is None or not getattr(user, "is_authenticated", False) or getattr(user, "pk", None) is None:
        raise errors.InvalidRequest("A signed-in user is required.")
    if not isinstance(connection, str) or not connection or not holds_tokens(connection):
        raise errors.InvalidRequest(f"Unknown connection {str(connection)[:40]!r}.")
    requested = scope_rules.normalise_requested(scopes)
    if isinstance(min_ttl, bool) or not isinstance(min_ttl, int) or not 0 <= min_ttl <= MAX_MIN_TTL:
        raise errors.InvalidRequest(f"min_ttl must be a whole number of seconds from 0 to {MAX_MIN_TTL}.")
    keyring_or_raise()

    identity = _resolve_identity(user=user, connection=connection, account=account, requested=requested)
    token_set = _stored_token_set(identity, connection=connection, requested=requested)
    narrowed = enforce_scope_limit(
        provider=connection, granted=token_set.scopes or [], requested=requested, limit=limit
    )
    if narrowed is not None:
        # A narrowed token comes straight from the provider; the stored one is not needed fresh.
        return _downscoped_token(identity, token_set, owner=user, requested=requested, scopes=narrowed)
    if needs_refresh(token_set, min_ttl, timezone.now()):
        token_set, _ = refresh(
            RefreshContext(
                token_set_id=token_set.pk,
                identity_id=identity.pk,
                owner=user,
                min_ttl=min_ttl,
                requested=tuple(requested),
            )
        )
        _check_scopes(token_set, requested)
        # A refresh may report other scopes: the limit is applied again to what is handed out.
        narrowed = enforce_scope_limit(
            provider=connection, granted=token_set.scopes or [], requested=requested, limit=limit
        )
        if narrowed is not None:
            return _downscoped_token(identity, token_set, owner=user, requested=requested, scopes=narrowed)
    return _access_token(identity, token_set, connection=connection, requested=requested)


@sensitive_variables()
def stored_access_token(
    identity: ResolvedAccount | None,
    *,
    connection: str,
    requested: list[str],
    min_ttl: int,
    limit: scope_rules.ScopeLimit | None = None,
) -> AccessToken | None:
    """The token ``get_access_token`` would hand out for an already resolved account when it needs
    no refresh and passes every check; None when ``get_access_token`` must run (to refresh, to
    narrow, or to raise the error that says what is wrong). The agent API's hot path
    (``vault.issuing``): the same functions as ``get_access_token``, so the same rules."""
    if identity is None or not holds_tokens(connection):
        return None
    try:
        token_set = _stored_token_set(identity, connection=connection, requested=requested)
        narrowed = enforce_scope_limit(
            provider=connection, granted=token_set.scopes or [], requested=requested, limit=limit
        )
        if narrowed is not None or needs_refresh(token_set, min_ttl, timezone.now()):
            return None
        return _access_token(identity, token_set, connection=connection, requested=requested)
    except errors.TokenVaultError:
        return None


def _stored_token_set(identity: ResolvedAccount, *, connection: str, requested: list[str]) -> TokenSet:
    """The resolved account's token set, if it may be used for ``requested`` (refresh aside)."""
    token_set = identity.token_set
    if token_set is None:
        raise errors.ReauthorizationRequired(
            f"No token is stored for this {provider_title(connection)} account; connect it again.",
            connection=connection,
            authorize_url=errors.authorize_url(connection, requested),
        )
    _check_belongs(token_set, identity)
    if token_set.status == TokenSet.Status.RECONNECT_REQUIRED:
        raise reauth_error(token_set, requested)
    if token_set.status == TokenSet.Status.VAULT_FAULT and not fault_may_have_cleared(token_set):
        # Flagged once, logged once: fail fast from the flag, no decryption retried (issue 12.5).
        raise fault_error(token_set, requested)
    _check_scopes(token_set, requested)
    return token_set


@sensitive_variables("access_token")
def _access_token(
    identity: ResolvedAccount, token_set: TokenSet, *, connection: str, requested: list[str]
) -> AccessToken:
    access_token = decrypt_access_token(token_set, requested)
    if not is_plausible_access_token(access_token):
        # Blank, cut short or garbled: a vault fault, never a token to hand out (issue 12.4).
        flag_vault_fault(token_set, code="implausible_access_token")
        raise fault_error(token_set, requested)
    if token_set.status == TokenSet.Status.VAULT_FAULT:
        token_set.clear_vault_fault()  # flagged under other keys; it decrypts under these
    now = timezone.now()
    expires_at, expires_in = token_set.expires_at, None
    if (
        expires_at is not None
        and expires_at <= now
        and token_set.expiry_assumed
        and not token_set.has_refresh_token
    ):
        # Only an assumed lifetime, past, and nothing can renew the token: its expiry is unknown
        # (e.g. a GitHub OAuth App token, which does not expire), not "now".
        expires_at = None
    if expires_at is not None:
        expires_in = max(0, math.floor((expires_at - now).total_seconds()))
    return AccessToken(
        access_token=access_token,
        # RFC 6750 bearer tokens: GitHub spells the type "bearer"; callers get one spelling.
        token_type="Bearer" if token_set.token_type.lower() in ("", "bearer") else token_set.token_type,
        expires_at=expires_at,
        expires_in=expires_in,
        scopes=tuple(token_set.scopes or ()),
        connection=connection,
        account=identity.pk,
        account_name=identity.account_name,
    )


@sensitive_variables()
def _downscoped_token(
    identity: ResolvedAccount,
    token_set: TokenSet,
    *,
    owner: User,
    requested: list[str],
    scopes: tuple[str, ...],
) -> AccessToken:
    """A token with only ``scopes``: a refresh grant naming them (Google answers a token with just
    those), handed out and never stored, so the token set keeps the whole grant (issue 12.2).
    Only for ``scope_rules.DOWNSCOPING_PROVIDERS``, which do not rotate refresh tokens."""
    title = provider_title(token_set.provider)
    now = timezone.now()
    if not token_set.has_refresh_token:
        raise errors.ScopeLimitExceeded(
            f"The linked {title} account has no refresh token to narrow its token with; "
            "reconnect it, or allow this agent key the whole grant.",
            granted=token_set.scopes or [],
            allowed=scopes,
            connection=token_set.provider,
        )
    if token_set.retry_not_before and token_set.retry_not_before > now:
        wait = math.ceil((token_set.retry_not_before - now).total_seconds())
        raise errors.ProviderUnavailable(
            f"{title} was unavailable moments ago; try again in {wait} s.",
            retry_after=wait,
            connection=token_set.provider,
        )
    ctx = RefreshContext(
        token_set_id=token_set.pk,
        identity_id=identity.pk,
        owner=owner,
        min_ttl=0,
        requested=tuple(requested),
    )
    outcome = call_provider(token_set, ctx, scope=scopes)
    if outcome.kind != "success":
        raise record_failed_call(token_set, outcome, ctx)
    tokens = parse_token_response(outcome.response or {}, received_at=outcome.received_at)
    got = tokens.scopes or list(scopes)
    wider = scope_rules.beyond(token_set.provider, granted=got, allowed=scopes)
    if wider:
        logger.error(
            "Token set %s (%s): a narrowed refresh answered more scopes than asked; not handed out",
            token_set.pk,
            token_set.provider,
        )
        raise errors.ScopeLimitExceeded(
            f"{title} did not narrow the token to this agent key's scopes, so it was not handed out.",
            granted=got,
            allowed=scopes,
            beyond=wider,
            connection=token_set.provider,
        )
    token_type = tokens.token_type or "Bearer"
    return AccessToken(
        access_token=tokens.access_token,
        token_type="Bearer" if token_type.lower() == "bearer" else token_type,
        expires_at=tokens.expires_at,
        expires_in=max(0, math.floor((tokens.expires_at - timezone.now()).total_seconds())),
        scopes=tuple(got),
        connection=token_set.provider,
        account=identity.pk,
        account_name=identity.account_name,
    )


def _check_belongs(token_set: TokenSet, identity: ResolvedAccount) -> None:
    """A token set answers only for the provider account it was written for."""
    if token_set.provider != identity.provider or token_set.uid != identity.uid:
        logger.error(
            "Token set %s does not match its identity %s (provider/uid differ); refusing it",
            token_set.pk,
            identity.pk,
        )
        raise errors.DecryptionFailed(
            connection=identity.provider, authorize_url=errors.authorize_url(identity.provider)
        )


def _check_scopes(token_set: TokenSet, requested: list[str]) -> None:
    missing = scope_rules.missing_scopes(
        token_set.provider, granted=token_set.scopes or [], requested=requested
    )
    if missing:
        title = provider_title(token_set.provider)
        raise errors.InsufficientScope(
            f"The linked {title} account has not granted: {', '.join(missing)}.",
            granted=token_set.scopes or [],
            missing=missing,
            connection=token_set.provider,
            authorize_url=errors.authorize_url(token_set.provider, missing),
        )


def enforce_scope_limit(
    *,
    provider: str,
    granted: Iterable[str],
    requested: Iterable[str],
    limit: scope_rules.ScopeLimit | None,
) -> tuple[str, ...] | None:
    """The one rule for what a limited holder (an agent key; the OAuth client exchange next) may
    receive: a token never more powerful than its limit (issue 12.2).

    None: hand out the stored token as it is (no limit, the grant is within it, or the person
    allowed this holder the whole grant). A tuple: the granted scopes to narrow the token to (the
    requested ones, else all the limit covers), where the provider can narrow a token. Otherwise
    ``ScopeLimitExceeded``, which says why.
    """
    if limit is None or not limit.scopes or limit.whole_grant:
        return None
    granted = list(granted)
    beyond = scope_rules.beyond(provider, granted=granted, allowed=limit.scopes)
    if not beyond:
        return None
    title = provider_title(provider)
    if scope_rules.can_downscope(provider):
        wanted = list(requested) or list(limit.scopes)
        target = scope_rules.narrowed(provider, granted=granted, wanted=wanted)
        if target:
            return tuple(target)
        message = f"The linked {title} account granted none of the scopes this agent key is limited to."
    else:
        message = (
            f"This agent key is limited to {' '.join(limit.scopes[:10])}, but the linked {title} "
            f"account granted more ({' '.join(beyond[:10])}) and {title} cannot narrow a token. "
            "Its owner can allow this key the whole grant on the agents page."
        )
    raise errors.ScopeLimitExceeded(
        message, granted=granted, allowed=limit.scopes, beyond=beyond, connection=provider
    )


def _as_account_id(account: int | str | None) -> int | None:
    if account is None:
        return None
    if isinstance(account, bool):
        raise errors.InvalidRequest("account must be an identity id.")
    try:
        return int(account)
    except (TypeError, ValueError):
        raise errors.InvalidRequest("account must be an identity id.") from None


def _resolve_identity(
    *, user: User, connection: str, account: int | str | None, requested: list[str]
) -> ResolvedAccount:
    """The account ``account`` names (else the default one), with its token set, read by the hot
    path's one query (``hotpath.find_account``); ``ConnectionRequired`` when there is none."""
    account_id = _as_account_id(account)
    resolved = find_account(user_id=user.pk, provider=connection, account_id=account_id)
    if resolved is None:
        title = provider_title(connection)
        raise errors.ConnectionRequired(
            f"No linked {title} account with that id."
            if account_id is not None
            else f"No {title} account is linked; connect one.",
            connection=connection,
            authorize_url=errors.authorize_url(connection, requested),
        )
    return resolved
