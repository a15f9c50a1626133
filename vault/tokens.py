"""The vault's Python API: capture tokens from a sign-in, hand out fresh access tokens, refresh.

``get_access_token`` is the one place a plaintext access token leaves the vault. Everything that
holds plaintext here runs under ``sensitive_variables`` so Django's error reports show stars, and
errors raised to callers are the vault's own (``vault.errors``) with the provider's exception
chain cut off, so no frame of social-core (which holds the refresh token) ends up in a report.

Refresh is single-flight per token set (DESIGN.md "Rules"):

* PostgreSQL (or any database with ``SELECT ... FOR UPDATE``): the token set row is locked for the
  refresh call; waiters block on the lock, then re-read and find it fresh. Works across threads,
  processes and hosts.
* SQLite: a write transaction locks the whole database, so holding one across the HTTP call would
  block every other writer, including the development sandbox answering that very call. Instead a
  short transaction claims a lease on the row (conditional on the row's ``version``), the provider
  is called with no transaction open, and the result is written only if the lease is still ours and
  the row still belongs to the same identity and owner. Waiters poll the row and re-read.

Either way a rotated refresh token is committed before the new access token is returned, an
``invalid_grant`` marks the token set "reconnect required" (later calls fail fast from that status),
client-credential errors are reported to staff, and outages get short bounded retries and a short
pause; nothing is deleted or disabled because a provider is down.
"""

from __future__ import annotations

import logging
import math
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Literal

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables
from social_core.backends.open_id_connect import OpenIdConnectAuth
from social_core.exceptions import AuthConfigurationError, SocialAuthBaseException
from social_django.models import UserSocialAuth
from social_django.utils import load_backend, load_strategy

from accounts import activity
from accounts.issuers import configured_issuers, unusable_reason
from accounts.models import Activity, IdentityDetails, User
from accounts.providers import is_configured, provider_title
from linking_site import prepared

from . import errors
from . import scopes as scope_rules
from .keys import get_keyring
from .locking import lock_active_owner_chain, lock_rows, lock_token_set_chain
from .models import TokenSet

logger = logging.getLogger(__name__)

#: Retries after the first attempt for timeouts, 5xx, 429 and connection errors.
MAX_RETRIES = 2
#: Pause before each retry (seconds). Short: a caller is waiting.
RETRY_BACKOFF: tuple[float, ...] = (0.25, 0.75)
#: A 429 asking us to wait longer than this is not retried inline.
MAX_INLINE_RETRY_AFTER = 2
#: After an outage, callers are told to come back after this many seconds, and no refresh of the
#: same token set is tried before then (so twenty waiting callers do not become sixty requests).
OUTAGE_RETRY_AFTER = 15
#: After the provider rejected this site's client credentials, refresh pauses this long.
MISCONFIGURED_PAUSE = 60
MAX_RETRY_AFTER = 3600
MAX_MIN_TTL = 24 * 3600
#: How often a caller waiting for another caller's refresh (SQLite lease) re-reads the row.
LEASE_POLL_SECONDS = 0.05
#: A token younger than this (or than half its lifetime, if shorter) is never refreshed only
#: because ``min_ttl`` asks for more than the provider's tokens live (issue 12.3).
MIN_REFRESH_AGE = 300
#: Longest access token the vault stores or hands out (characters).
MAX_ACCESS_TOKEN_LENGTH = 8192
# RFC 6750 2.1 lets a bearer token be only visible ASCII; be as lenient as that, no more.
_PLAUSIBLE_TOKEN = re.compile(r"[\x21-\x7e]+")

REAUTH_CODES = frozenset(
    {"reauthentication_required", "credential_rejected", "token_revoked", "authorization_code_rejected"}
)
REAUTH_PROVIDER_CODES = frozenset({"invalid_grant", "bad_refresh_token", "invalid_token"})
CONFIG_PROVIDER_CODES = frozenset({"invalid_client", "incorrect_client_credentials", "unauthorized_client"})


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


def assumed_lifetime() -> int:
    """Seconds an access token is taken to live when its provider said nothing (``expires_in``)."""
    return max(60, int(getattr(settings, "VAULT_ASSUMED_TOKEN_LIFETIME", 3600)))


def refresh_deadline() -> float:
    """Seconds a token request may spend on a provider refresh, retries and waiting included."""
    return max(1.0, float(getattr(settings, "VAULT_REFRESH_DEADLINE", 10.0)))


def is_plausible_access_token(value: object) -> bool:
    """Whether ``value`` could be an access token at all: a blank, non-string, oversized or
    non-ASCII value is a fault, never stored or handed out (issue 12.4)."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_ACCESS_TOKEN_LENGTH
        and _PLAUSIBLE_TOKEN.fullmatch(value) is not None
    )


def _expiry(response: Mapping[str, Any], received_at: datetime) -> tuple[datetime, bool]:
    """``(expires_at, assumed)`` of a token response; without ``expires_in`` the configured
    lifetime is assumed, so the token is renewed early instead of trusted for ever (issue 20.9)."""
    expires_in = _int_or_none(response.get("expires_in"))
    if expires_in is None:
        return received_at + timedelta(seconds=assumed_lifetime()), True
    return received_at + timedelta(seconds=expires_in), False


# --- public API -----------------------------------------------------------------------------------


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
    shorter ``expires_in``; see ``_needs_refresh``). ``limit`` is what the caller (an agent key, an
    OAuth client) may hold: a wider grant is narrowed or refused (``enforce_scope_limit``). Raises
    a ``vault.errors.TokenVaultError`` subclass with a stable ``code`` otherwise.

    Call it outside a transaction: a refresh commits the new tokens before this returns, which an
    enclosing transaction would delay.
    """
    if user is None or not getattr(user, "is_authenticated", False) or getattr(user, "pk", None) is None:
        raise errors.InvalidRequest("A signed-in user is required.")
    if not isinstance(connection, str) or not connection or not is_configured(connection):
        raise errors.InvalidRequest(f"Unknown connection {str(connection)[:40]!r}.")
    requested = scope_rules.normalise_requested(scopes)
    if isinstance(min_ttl, bool) or not isinstance(min_ttl, int) or not 0 <= min_ttl <= MAX_MIN_TTL:
        raise errors.InvalidRequest(f"min_ttl must be a whole number of seconds from 0 to {MAX_MIN_TTL}.")
    _keyring_or_raise()

    identity = _resolve_identity(user=user, connection=connection, account=account, requested=requested)
    token_set = _stored_token_set(identity, connection=connection, requested=requested)
    narrowed = enforce_scope_limit(
        provider=connection, granted=token_set.scopes or [], requested=requested, limit=limit
    )
    if narrowed is not None:
        # A narrowed token comes straight from the provider; the stored one is not needed fresh.
        return _downscoped_token(identity, token_set, owner=user, requested=requested, scopes=narrowed)
    if _needs_refresh(token_set, min_ttl, timezone.now()):
        token_set, _ = _refresh(
            _Context(
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
    identity: _Resolved | None,
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
    if identity is None or not is_configured(connection):
        return None
    try:
        token_set = _stored_token_set(identity, connection=connection, requested=requested)
        narrowed = enforce_scope_limit(
            provider=connection, granted=token_set.scopes or [], requested=requested, limit=limit
        )
        if narrowed is not None or _needs_refresh(token_set, min_ttl, timezone.now()):
            return None
        return _access_token(identity, token_set, connection=connection, requested=requested)
    except errors.TokenVaultError:
        return None


def _stored_token_set(identity: _Resolved, *, connection: str, requested: list[str]) -> TokenSet:
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
        raise _reauth_error(token_set, requested)
    if token_set.status == TokenSet.Status.VAULT_FAULT and not _fault_may_have_cleared(token_set):
        # Flagged once, logged once: fail fast from the flag, no decryption retried (issue 12.5).
        raise _fault_error(token_set, requested)
    _check_scopes(token_set, requested)
    return token_set


@sensitive_variables("access_token")
def _access_token(
    identity: _Resolved, token_set: TokenSet, *, connection: str, requested: list[str]
) -> AccessToken:
    access_token = _decrypt(token_set, "access_token", requested)
    if not is_plausible_access_token(access_token):
        # Blank, cut short or garbled: a vault fault, never a token to hand out (issue 12.4).
        _flag_vault_fault(token_set, code="implausible_access_token")
        raise _fault_error(token_set, requested)
    if token_set.status == TokenSet.Status.VAULT_FAULT:
        _clear_vault_fault(token_set)  # flagged under other keys; it decrypts under these
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
    identity: _Resolved, token_set: TokenSet, *, owner: User, requested: list[str], scopes: tuple[str, ...]
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
    ctx = _Context(
        token_set_id=token_set.pk,
        identity_id=identity.pk,
        owner=owner,
        min_ttl=0,
        requested=tuple(requested),
    )
    outcome = _call_provider(token_set, ctx, scope=scopes)
    if outcome.kind != "success":
        raise _record_failure(token_set, outcome, ctx)
    response = outcome.response or {}
    got = scope_rules.parse_granted(response.get("scope")) or list(scopes)
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
    expires_at, _assumed = _expiry(response, outcome.received_at or now)
    token_type = str(response.get("token_type") or "Bearer")
    return AccessToken(
        access_token=response["access_token"],
        token_type="Bearer" if token_type.lower() == "bearer" else token_type[:40],
        expires_at=expires_at,
        expires_in=max(0, math.floor((expires_at - timezone.now()).total_seconds())),
        scopes=tuple(got),
        connection=token_set.provider,
        account=identity.pk,
        account_name=identity.account_name,
    )


def _record_failure(token_set: TokenSet, outcome: _Outcome, ctx: _Context) -> errors.TokenVaultError:
    """A failed narrowing refresh is recorded like any failed refresh (reconnect, pause, staff)."""
    with transaction.atomic():
        current = lock_token_set_chain(token_set_id=token_set.pk).token_set  # the one lock order
        if current is None or current.identity_id != ctx.identity_id:
            return _gone_error(ctx, token_set)
        return _apply_outcome(current, outcome, ctx) or errors.ProviderUnavailable(
            connection=token_set.provider
        )


@sensitive_variables()
def force_refresh(*, token_set_id: int, actor: User | None = None) -> TokenSet:
    """Refresh now, whatever the expiry, status or outage pause say (staff "Force refresh")."""
    token_set = TokenSet.objects.select_related("identity__user").filter(pk=token_set_id).first()
    if token_set is None or token_set.identity is None:
        raise errors.ConnectionRequired("This token set's account is no longer linked.")
    identity = token_set.identity
    refreshed, _ = _refresh(
        _Context(
            token_set_id=token_set.pk,
            identity_id=identity.pk,
            owner=identity.user,
            min_ttl=0,
            force=True,
            actor=actor,
        )
    )
    return refreshed


@dataclass
class RefreshReport:
    """Counts for ``vault_refresh`` (never tokens)."""

    due: int = 0
    refreshed: int = 0
    already_fresh: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    #: Skipped, never sent to a provider: ``provider_unavailable`` / ``issuer_changed`` -> count.
    skipped: dict[str, int] = field(default_factory=dict)


def refresh_expiring(*, within: int, dry_run: bool = False) -> RefreshReport:
    """Refresh every linked, active token set whose access token expires within ``within`` seconds."""
    report = RefreshReport()
    horizon = timezone.now() + timedelta(seconds=within)
    due = (
        TokenSet.objects.filter(
            identity__isnull=False, status=TokenSet.Status.ACTIVE, expires_at__lte=horizon
        )
        .exclude(refresh_token_encrypted="")
        # A merged-away or deactivated profile's tokens are not kept alive (issue 20.3).
        .filter(identity__user__is_active=True, identity__user__merged_into__isnull=True)
        .select_related("identity__user", "identity__details")
        .order_by("expires_at", "pk")
    )
    issuers = configured_issuers()
    for token_set in due.iterator(chunk_size=200):
        identity = token_set.identity
        # Issue 20.1: a removed provider's tokens, or an identity bound to an issuer its provider
        # no longer has, are never sent anywhere; counted in one summary line.
        skipped = unusable_reason(identity, issuers=issuers)
        if skipped is not None:
            report.skipped[skipped] = report.skipped.get(skipped, 0) + 1
            continue
        report.due += 1
        if dry_run:
            continue
        try:
            _, refreshed = _refresh(
                _Context(
                    token_set_id=token_set.pk, identity_id=identity.pk, owner=identity.user, min_ttl=within
                )
            )
        except errors.TokenVaultError as error:
            report.failed[error.code] = report.failed.get(error.code, 0) + 1
            continue
        if refreshed:
            report.refreshed += 1
        else:
            report.already_fresh += 1
    return report


@sensitive_variables()
def capture_tokens(
    *,
    identity: UserSocialAuth,
    response: Mapping[str, Any],
    received_at: datetime | None = None,
    requested_scopes: Iterable[str] = (),
) -> TokenSet | None:
    """Store a token response (sign-in or link) in ``identity``'s token set, encrypted.

    Expiry is made absolute from ``received_at``. Granted scopes are the response's ``scope``; only
    when a response has none (RFC 6749 5.1: then the grant is what was asked) are
    ``requested_scopes`` used. A response without a refresh token keeps the stored one.
    """
    access_token = response.get("access_token")
    if not is_plausible_access_token(access_token):
        # Never stored: a blank or garbled value would only be handed out later (issue 12.4).
        logger.warning(
            "Token response for %s identity %s had no usable access token; nothing was stored",
            identity.provider,
            identity.pk,
        )
        return None
    keyring = _keyring_or_raise()
    received_at = received_at or timezone.now()
    new_refresh = response.get("refresh_token")
    new_refresh = new_refresh if isinstance(new_refresh, str) and new_refresh else None
    expires_at, expiry_assumed = _expiry(response, received_at)
    granted = scope_rules.parse_granted(response.get("scope"))
    scopes_reported = bool(granted)
    if not scopes_reported:
        # No (or an empty) ``scope``: RFC 6749 5.1 says the grant is then what was asked. GitHub
        # App user tokens always answer ``scope=""``: their access is the app's permissions.
        granted = scope_rules.normalise_requested(list(requested_scopes))
    with transaction.atomic():
        # Profile, identity, token set (the one lock order); a profile merged away or deactivated
        # meanwhile gets nothing attached (``accounts.locking.InactiveProfile``, issue 20.3).
        token_set = lock_active_owner_chain(identity=identity).token_set
        if token_set is None:
            token_set = TokenSet.objects.create(
                identity=identity, owner_id=identity.user_id, provider=identity.provider, uid=identity.uid
            )
        refresh_token = new_refresh or _kept_refresh_token(token_set, keyring)
        token_set.owner_id = identity.user_id
        token_set.provider, token_set.uid = identity.provider, identity.uid
        token_set.set_tokens(access_token=access_token, refresh_token=refresh_token, keyring=keyring)
        token_set.token_type = str(response.get("token_type") or "Bearer")[:40]
        token_set.scopes = granted
        token_set.scopes_reported = scopes_reported
        token_set.expires_at, token_set.expiry_assumed = expires_at, expiry_assumed
        token_set.issued_at = received_at
        token_set.status = TokenSet.Status.ACTIVE
        token_set.fault_keyring = ""
        token_set.last_error_code = ""
        token_set.last_error_at = None
        token_set.retry_not_before = None
        token_set.lease_id, token_set.lease_expires_at = "", None
        token_set.version += 1
        token_set.save()
    logger.info(
        "Stored tokens for %s identity %s (token set %s, %d scope(s), refresh token %s)",
        identity.provider,
        identity.pk,
        token_set.pk,
        len(granted),
        "present" if refresh_token else "absent",
    )
    return token_set


@sensitive_variables()
def rebind_owner(*, identity_id: int, owner_id: int) -> bool:
    """Re-encrypt an identity's token set bound to ``owner_id`` (after the identity moved users).

    Returns whether it was re-bound; a value that does not decrypt is left as it is (logged).
    Runs inside the merge's transaction, which holds the profile and identity locks already, so
    this takes the token set last, as the lock order says (``accounts.locking``).
    """
    with transaction.atomic():
        token_set = _lock(TokenSet.objects.filter(identity_id=identity_id)).first()
        if token_set is None or token_set.owner_id == owner_id:
            return False
        try:
            access_token, refresh_token = token_set.read_access_token(), token_set.read_refresh_token()
        except errors.VaultUnavailable as error:
            logger.error(
                "Token set %s could not be re-bound to its new owner (%s)", token_set.pk, type(error).__name__
            )
            return False
        token_set.owner_id = owner_id
        token_set.set_tokens(access_token=access_token, refresh_token=refresh_token or None)
        token_set.version += 1
        token_set.save()
    logger.info("Token set %s re-bound to user %s", token_set.pk, owner_id)
    return True


# --- identity and token set lookup ------------------------------------------------------------------


def _keyring_or_raise():
    try:
        return get_keyring()
    except errors.VaultKeyError as error:
        logger.error("Token vault unavailable: %s", error.message)
        raise errors.VaultKeyError(errors.VaultUnavailable.default_message) from None


@dataclass(frozen=True)
class _Resolved:
    """The identity a call resolved to, with its token set (None when nothing is stored)."""

    pk: int
    provider: str
    uid: str
    account_name: str
    token_set: TokenSet | None


#: The token set's columns as the resolving query reads them (every concrete field).
_TOKEN_SET_FIELDS = tuple(TokenSet._meta.concrete_fields)


def account_columns_sql() -> str:
    """The columns ``accounts_from_rows`` reads, for a query joining ``ACCOUNTS_JOIN_SQL``."""
    return "i.id, i.provider, i.uid, d.is_default, d.account_name, " + prepared.columns(
        "t", _TOKEN_SET_FIELDS
    )


def accounts_join_sql(*, user_column: str, by_account: bool) -> str:
    """``LEFT JOIN`` a user's identities of one provider (``%s``; then the id ``%s`` when
    ``by_account``), with their details and token sets. ``LEFT`` so a query that joins it to
    something else still answers with no identity."""
    return (
        f"LEFT JOIN {prepared.table(UserSocialAuth)} i "
        f"ON i.user_id = {user_column} AND i.provider = %s" + (" AND i.id = %s" if by_account else "") + " "
        f"LEFT JOIN {prepared.table(IdentityDetails)} d ON d.identity_id = i.id "
        f"LEFT JOIN {prepared.table(TokenSet)} t ON t.identity_id = i.id"
    )


def accounts_from_rows(rows: Iterable[tuple], offset: int = 0) -> _Resolved | None:
    """The account a token request means among ``rows`` (from ``account_columns_sql`` at
    ``offset``, ordered by identity id): the one marked default, else the oldest one."""
    found = [row[offset:] for row in rows if row[offset] is not None]
    if not found:
        return None
    row = next((r for r in found if r[3]), found[0])
    token_values = row[5:]
    return _Resolved(
        pk=row[0],
        provider=row[1],
        uid=row[2],
        account_name=row[4] or "",
        token_set=(
            prepared.model_from_row(TokenSet, _TOKEN_SET_FIELDS, token_values)
            if token_values[0] is not None
            else None
        ),
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
) -> _Resolved:
    """One prepared query (identity, details, token set): the ORM's select_related over three
    tables cost more than the database round trip itself on every token request (bench/README.md)."""
    account_id = _as_account_id(account)
    by_account = account_id is not None
    sql = prepared.statement(
        f"tokens.resolve.{by_account}",
        lambda: (
            f"SELECT {account_columns_sql()} FROM {prepared.table(User)} u "  # noqa: S608
            + accounts_join_sql(user_column="u.id", by_account=by_account)
            + " WHERE u.id = %s ORDER BY i.id"
        ),
    )
    params: list[object] = [connection, *([account_id] if account_id is not None else []), user.pk]
    resolved = accounts_from_rows(prepared.fetch_all(sql, params))
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


def _related_or_none(obj: Any, name: str) -> Any:
    try:
        return getattr(obj, name)
    except ObjectDoesNotExist:
        return None


def _check_belongs(token_set: TokenSet, identity: _Resolved) -> None:
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


def _fault_error(token_set: TokenSet, requested: Iterable[str] = ()) -> errors.VaultFault:
    return errors.VaultFault(
        connection=token_set.provider,
        authorize_url=errors.authorize_url(token_set.provider, list(requested)),
    )


def _flag_vault_fault(token_set: TokenSet, *, code: str) -> None:
    """Mark the token set ``vault_fault`` (staff see it in the admin and ``vault_status``, the person
    sees "Reconnect"); later requests fail fast from the status. Conditional on the version read,
    so tokens a concurrent refresh or reconnect just wrote are not flagged.

    A value that did not decrypt may be the keys' fault (another environment's key under the right
    name): the flag remembers the keys' fingerprint, and the row is tried once more when they change.
    """
    fingerprint = _keyring_fingerprint() if code == "decryption_failed" else ""
    flagged = (
        TokenSet.objects.filter(pk=token_set.pk, version=token_set.version)
        .exclude(status=TokenSet.Status.VAULT_FAULT, fault_keyring=fingerprint)
        .update(
            status=TokenSet.Status.VAULT_FAULT,
            last_error_code=code,
            last_error_at=timezone.now(),
            fault_keyring=fingerprint,
            version=F("version") + 1,
        )
    )
    if flagged:
        logger.error(
            "Token set %s (%s) flagged vault_fault (%s): not handed out or refreshed until reconnected%s",
            token_set.pk,
            token_set.provider,
            code,
            " or until the vault keys change" if fingerprint else "",
        )


def _keyring_fingerprint() -> str:
    try:
        return get_keyring().fingerprint
    except errors.VaultKeyError:
        return ""


def _fault_may_have_cleared(token_set: TokenSet) -> bool:
    """A row flagged because it did not decrypt under keys that have changed since: try it again."""
    return bool(token_set.fault_keyring) and token_set.fault_keyring != _keyring_fingerprint()


def _clear_vault_fault(token_set: TokenSet) -> None:
    cleared = TokenSet.objects.filter(
        pk=token_set.pk, version=token_set.version, status=TokenSet.Status.VAULT_FAULT
    ).update(
        status=TokenSet.Status.ACTIVE,
        last_error_code="",
        last_error_at=None,
        fault_keyring="",
        version=F("version") + 1,
    )
    if cleared:
        token_set.status, token_set.fault_keyring = TokenSet.Status.ACTIVE, ""
        token_set.version += 1
        logger.info("Token set %s decrypts under the current vault keys again: fault cleared", token_set.pk)


def _reauth_error(token_set: TokenSet, requested: Iterable[str] = ()) -> errors.ReauthorizationRequired:
    title = provider_title(token_set.provider)
    return errors.ReauthorizationRequired(
        f"{title} no longer accepts this account's stored authorization; connect it again.",
        connection=token_set.provider,
        authorize_url=errors.authorize_url(token_set.provider, requested),
    )


@sensitive_variables()
def _decrypt(token_set: TokenSet, field_name: str, requested: Iterable[str] = ()) -> str:
    try:
        if field_name == "access_token":
            return token_set.read_access_token()
        return token_set.read_refresh_token()
    except errors.VaultKeyError as error:
        # A key missing from VAULT_KEYS is the configuration's fault (readiness says so), not this
        # row's: nothing is flagged, and the row works again once the key is back.
        logger.error(
            "Token set %s: the stored %s could not be decrypted (%s)",
            token_set.pk,
            field_name,
            type(error).__name__,
        )
        raise type(error)(
            connection=token_set.provider,
            authorize_url=errors.authorize_url(token_set.provider, list(requested)),
        ) from None
    except errors.VaultUnavailable:
        _flag_vault_fault(token_set, code="decryption_failed")
        raise _fault_error(token_set, requested) from None


@sensitive_variables()
def _kept_refresh_token(token_set: TokenSet, keyring) -> str | None:
    if not token_set.refresh_token_encrypted:
        return None
    try:
        return token_set.read_refresh_token(keyring=keyring)
    except errors.VaultUnavailable:
        logger.warning("Token set %s: the stored refresh token did not decrypt and was dropped", token_set.pk)
        return None


def _lock(queryset):
    """``SELECT ... FOR NO KEY UPDATE`` where the database has row locks (not SQLite)."""
    return lock_rows(queryset)


def _needs_refresh(token_set: TokenSet, min_ttl: int, now: datetime) -> bool:
    """Whether the token expires within ``min_ttl`` seconds, counting no more than a refresh can
    give: when ``min_ttl`` is longer than the provider's tokens live (``min_ttl=3600`` against
    Google's 3599 s), a token is not refreshed again until it is ``MIN_REFRESH_AGE`` (or half its
    lifetime) old, and is answered meanwhile with its real ``expires_in`` (issue 12.3)."""
    if token_set.expires_at is None:
        return False
    issued_at = token_set.issued_at or token_set.refreshed_at
    if issued_at is not None:
        lifetime = math.floor((token_set.expires_at - issued_at).total_seconds())
        if lifetime > 0:
            min_ttl = min(min_ttl, lifetime - min(MIN_REFRESH_AGE, lifetime // 2))
    return token_set.expires_at <= now + timedelta(seconds=min_ttl)


#: The longest ``expires_in`` believed (ten years); anything past it, or not a whole number of
#: seconds, counts as missing (the assumed lifetime), never as an overflow or a token for ever.
MAX_EXPIRES_IN = 10 * 365 * 24 * 3600


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if 0 <= number <= MAX_EXPIRES_IN else None


# --- refresh ----------------------------------------------------------------------------------------


@dataclass
class _Context:
    token_set_id: int
    identity_id: int
    owner: User
    min_ttl: int
    force: bool = False
    actor: User | None = None
    requested: tuple[str, ...] = ()


@dataclass
class _Verdict:
    kind: Literal["fresh", "refresh", "fail"]
    error: errors.TokenVaultError | None = None
    mark_reconnect: str = ""  # error code to record when the token set must be marked


@dataclass
class _Outcome:
    kind: Literal["success", "reauth", "config", "outage", "vault"]
    response: dict[str, Any] | None = field(default=None, repr=False)
    received_at: datetime | None = None
    code: str = ""
    provider_code: str = ""
    retry_after: int = OUTAGE_RETRY_AFTER
    attempts: int = 0
    oidc_context: dict[str, Any] | None = None


def _uses_row_lock() -> bool:
    return bool(connection.features.has_select_for_update)


def _refresh(ctx: _Context) -> tuple[TokenSet, bool]:
    """Refresh single-flight; returns the (re-read) token set and whether this call refreshed it."""
    if _uses_row_lock():
        return _refresh_with_row_lock(ctx)
    return _refresh_with_lease(ctx)


def _precheck(token_set: TokenSet | None, ctx: _Context, now: datetime) -> _Verdict:
    """What to do with the row as it is now (after the lock, or on each lease poll)."""
    if token_set is None or token_set.identity_id != ctx.identity_id or not _still_owned(ctx):
        return _Verdict("fail", _gone_error(ctx, token_set))
    if not ctx.force and not _needs_refresh(token_set, ctx.min_ttl, now):
        return _Verdict("fresh")
    if not ctx.force and token_set.status == TokenSet.Status.RECONNECT_REQUIRED:
        return _Verdict("fail", _reauth_error(token_set, ctx.requested))
    if (
        not ctx.force
        and token_set.status == TokenSet.Status.VAULT_FAULT
        and not _fault_may_have_cleared(token_set)
    ):
        return _Verdict("fail", _fault_error(token_set, ctx.requested))
    if not token_set.has_refresh_token:
        # An assumed expiry (no expires_in) is a guess: passing it proves nothing was revoked.
        if token_set.expires_at is not None and token_set.expires_at <= now and not token_set.expiry_assumed:
            return _Verdict(
                "fail", _reauth_error(token_set, ctx.requested), mark_reconnect="no_refresh_token"
            )
        if ctx.force:
            return _Verdict("fail", _reauth_error(token_set, ctx.requested))
        return _Verdict("fresh")  # still valid; nothing can make it last longer
    if not ctx.force and token_set.retry_not_before and token_set.retry_not_before > now:
        wait = math.ceil((token_set.retry_not_before - now).total_seconds())
        return _Verdict(
            "fail",
            errors.ProviderUnavailable(
                f"{provider_title(token_set.provider)} was unavailable moments ago; try again in {wait} s.",
                retry_after=wait,
                connection=token_set.provider,
            ),
        )
    return _Verdict("refresh")


def _still_owned(ctx: _Context) -> bool:
    """The identity is still the caller's, on an active profile (a merged-away or deactivated
    profile's tokens are never refreshed: issue 20.3, cron kept refreshing them)."""
    return UserSocialAuth.objects.filter(
        pk=ctx.identity_id, user_id=ctx.owner.pk, user__is_active=True, user__merged_into__isnull=True
    ).exists()


def _gone_error(ctx: _Context, token_set: TokenSet | None) -> errors.ConnectionRequired:
    provider = token_set.provider if token_set is not None else ""
    return errors.ConnectionRequired(
        "This account was disconnected while its token was being fetched.",
        connection=provider,
        authorize_url=errors.authorize_url(provider, ctx.requested) if provider else None,
    )


def _refresh_with_row_lock(ctx: _Context) -> tuple[TokenSet, bool]:
    error: errors.TokenVaultError | None = None
    refreshed = False
    with transaction.atomic():
        # The one lock order (``accounts.locking``): profile, identity, then token set, held for
        # the provider call. A disconnect or a merge takes the same rows in the same order, so it
        # waits for this refresh and then revokes or moves the tokens it wrote (issue 20.2: taking
        # the token set first and the identity row last, to save ``extra_data``, deadlocked).
        token_set = lock_token_set_chain(token_set_id=ctx.token_set_id).token_set
        verdict = _precheck(token_set, ctx, timezone.now())
        if verdict.kind == "fresh":
            return token_set, False
        if verdict.kind == "fail":
            if verdict.mark_reconnect:
                _mark_reconnect_required(token_set, ctx, code=verdict.mark_reconnect)
            error = verdict.error
        else:
            # The identity and its owner are locked: neither can change during the call.
            outcome = _call_provider(token_set, ctx)
            error = _apply_outcome(token_set, outcome, ctx)
            refreshed = error is None
    if error is not None:
        raise error
    return token_set, refreshed


def _lease_seconds() -> int:
    """The provider call is bounded by the refresh deadline, so the lease is too: a process that
    died mid-refresh holds it no longer than that (issue 20: a dead lease cost the next caller 24 s)."""
    return math.ceil(refresh_deadline()) + 1


def _refresh_with_lease(ctx: _Context) -> tuple[TokenSet, bool]:
    lease = uuid.uuid4().hex
    # A waiter gives up at the same deadline as a refresh, with Retry-After until the lease ends.
    deadline = time.monotonic() + refresh_deadline()
    while True:
        token_set = TokenSet.objects.filter(pk=ctx.token_set_id).first()
        now = timezone.now()
        verdict = _precheck(token_set, ctx, now)
        if verdict.kind == "fresh":
            return token_set, False
        if verdict.kind == "fail":
            if verdict.mark_reconnect:
                with transaction.atomic():
                    current = TokenSet.objects.filter(pk=token_set.pk, version=token_set.version).first()
                    if current is not None:
                        _mark_reconnect_required(current, ctx, code=verdict.mark_reconnect)
            raise verdict.error
        if token_set.lease_id and token_set.lease_expires_at and token_set.lease_expires_at > now:
            if time.monotonic() > deadline:
                left = math.ceil((token_set.lease_expires_at - now).total_seconds())
                raise errors.ProviderUnavailable(
                    f"Another refresh of this token is taking too long; try again in {max(1, left)} s.",
                    retry_after=max(1, left),
                    connection=token_set.provider,
                )
            time.sleep(LEASE_POLL_SECONDS)
            continue
        with transaction.atomic():
            claimed = TokenSet.objects.filter(
                pk=token_set.pk,
                version=token_set.version,
                lease_id=token_set.lease_id,
                identity_id=ctx.identity_id,
            ).update(
                lease_id=lease,
                lease_expires_at=now + timedelta(seconds=_lease_seconds()),
                # Bumped so a caller that read the row before this claim, and tries to claim it
                # after this refresh has finished (lease empty again), fails instead of refreshing
                # a second time without seeing this refresh's outcome (e.g. an outage pause).
                version=F("version") + 1,
            )
        if claimed:
            break

    try:
        outcome = _call_provider(token_set, ctx)
    except BaseException:
        _release_lease(token_set.pk, lease)
        raise

    error: errors.TokenVaultError | None = None
    lost = ""
    try:
        with transaction.atomic():
            locked = lock_token_set_chain(token_set_id=token_set.pk)  # the one lock order
            current = locked.token_set
            if current is None or current.identity_id != ctx.identity_id or locked.identity is None:
                lost = "removed"
            elif locked.owner is None or locked.owner.pk != ctx.owner.pk:
                lost = "moved"
            elif current.lease_id != lease:
                lost = "lease"
            else:
                error = _apply_outcome(current, outcome, ctx)
            if lost == "removed" and outcome.kind == "success":
                # The identity went away while the provider answered: these fresh tokens belong to
                # nobody now, so they go straight to revocation rather than into any token set.
                _detach_fresh_tokens(token_set, outcome, ctx)
            if lost == "moved" and outcome.kind == "success" and current.lease_id == lease:
                # A merge moved the identity while the provider answered; the old refresh token
                # may be rotated away now, so the fresh tokens stay with the identity, bound to
                # its new owner (the caller, who asked as the old owner, still gets no token).
                _apply_outcome(current, outcome, replace(ctx, owner=locked.owner))
    except BaseException:
        _release_lease(token_set.pk, lease)
        raise
    if lost:
        if lost != "lease":
            _release_lease(token_set.pk, lease)
        logger.warning(
            "Token set %s: refresh result not handed out (identity %s during the provider call)",
            token_set.pk,
            lost,
        )
        if lost == "lease":
            raise errors.ProviderUnavailable(
                "The token was being refreshed elsewhere; try again.",
                retry_after=1,
                connection=token_set.provider,
            )
        raise _gone_error(ctx, token_set)
    if error is not None:
        raise error
    return current, True


def _release_lease(token_set_id: int, lease: str) -> None:
    with transaction.atomic():
        TokenSet.objects.filter(pk=token_set_id, lease_id=lease).update(lease_id="", lease_expires_at=None)


@sensitive_variables()
def _call_provider(token_set: TokenSet, ctx: _Context, *, scope: tuple[str, ...] = ()) -> _Outcome:
    """Call the backend's real ``refresh_token()`` with short retries for outages, all within one
    deadline (``refresh_deadline()``, issue 12: three 5 s timeouts kept an agent waiting 16 s).
    ``scope`` asks for a token narrowed to those scopes (``enforce_scope_limit``)."""
    deadline = time.monotonic() + refresh_deadline()
    try:
        refresh_token = token_set.read_refresh_token()
    except errors.VaultKeyError as error:
        logger.error("Token set %s: the stored refresh token's key is missing (%s)", token_set.pk, error.code)
        return _Outcome("vault", code="vault_key_missing")
    except errors.VaultUnavailable:
        return _Outcome("vault", code="decryption_failed")  # flagged and logged once by _apply_outcome
    try:
        backend = load_backend(load_strategy(), token_set.provider, redirect_uri=None)
    except Exception:  # a provider no longer configured is a configuration fault
        return _Outcome("config", code="backend_missing")
    _bound_backend(backend, deadline=deadline, scope=scope)
    attempts = 0
    while True:
        attempts += 1
        received_at = timezone.now()
        try:
            response = backend.refresh_token(refresh_token)
            oidc_context = _check_oidc_continuity(backend, ctx, token_set, response)
        except SocialAuthBaseException as error:
            if getattr(error, "claim", None) == "access_token":
                # A token response without a usable access token (social-core checks it) is the
                # provider's fault, not a revoked grant: paused, never "reconnect" (issue 12.4).
                logger.warning(
                    "Token set %s (%s): the refresh response had no usable access token",
                    token_set.pk,
                    token_set.provider,
                )
                return _Outcome("outage", code="malformed_token_response", attempts=attempts)
            kind = _classify(error)
            retry_after = _retry_after_seconds(error.retry_after)
            code = error.code
            provider_code = str(error.provider_code or "")[:64]
            pause = RETRY_BACKOFF[min(attempts - 1, len(RETRY_BACKOFF) - 1)] if RETRY_BACKOFF else 0
            if (
                kind == "outage"
                and attempts <= MAX_RETRIES
                and (retry_after is None or retry_after <= MAX_INLINE_RETRY_AFTER)
                # Another attempt only if it has a second to run before the deadline.
                and time.monotonic() + pause + 1 < deadline
            ):
                time.sleep(pause)
                continue
            return _Outcome(
                kind,
                code=code,
                provider_code=provider_code,
                attempts=attempts,
                retry_after=retry_after if retry_after is not None else OUTAGE_RETRY_AFTER,
            )
        except Exception as error:  # a bug must not leak a traceback holding the token
            logger.error(
                "Unexpected %s while refreshing token set %s (%s)",
                type(error).__name__,
                token_set.pk,
                token_set.provider,
            )
            return _Outcome("outage", code="unexpected_error", attempts=attempts)
        if not isinstance(response, dict) or not is_plausible_access_token(response.get("access_token")):
            # Never stored or handed out (issue 12.4); a provider fault, so it is paused like one.
            logger.warning(
                "Token set %s (%s): the refresh response had no usable access token",
                token_set.pk,
                token_set.provider,
            )
            return _Outcome("outage", code="malformed_token_response", attempts=attempts)
        return _Outcome(
            "success",
            response=response,
            received_at=received_at,
            attempts=attempts,
            oidc_context=oidc_context,
        )


def _bound_backend(backend, *, deadline: float, scope: tuple[str, ...]) -> None:
    """Give each of this backend's HTTP requests at most the time left before ``deadline`` and,
    when narrowing, send ``scope`` with the refresh grant (RFC 6749 6). Set on the instance:
    ``load_backend`` makes a new one per call, and social-core has no per-call option for either."""
    send = backend.request
    default = float(backend.setting("REQUESTS_TIMEOUT") or backend.setting("URLOPEN_TIMEOUT") or 5.0)

    def request(url: str, **kwargs: Any):
        left = max(0.5, deadline - time.monotonic())
        timeout = kwargs.get("timeout") or default
        if isinstance(timeout, tuple):
            kwargs["timeout"] = tuple(min(float(part), left) for part in timeout)
        else:
            kwargs["timeout"] = min(float(timeout), left)
        return send(url, **kwargs)

    backend.request = request
    if scope:
        params = backend.refresh_token_params

        def refresh_token_params(token: str, *args: Any, **kwargs: Any) -> dict[str, str]:
            return {**params(token, *args, **kwargs), "scope": " ".join(scope)}

        backend.refresh_token_params = refresh_token_params


def _check_oidc_continuity(backend, ctx: _Context, token_set: TokenSet, response: dict) -> dict | None:
    """A refreshed OIDC ID token must be for the same subject (social-core checks it in extra_data)."""
    if not isinstance(backend, OpenIdConnectAuth) or not response.get("id_token"):
        return None
    identity = UserSocialAuth.objects.filter(pk=ctx.identity_id).first()
    extra = dict(identity.extra_data or {}) if identity is not None else {}
    validate = getattr(backend, "validate_refreshed_id_token", None)
    if validate is not None:
        # Same issuer and subject as at sign-in, fully validated (OpenID Connect Core 12.2).
        validate(
            response["id_token"],
            token_set.uid,
            context=extra.get("_oidc_id_token_context"),
            access_token=response.get("access_token"),
        )
    data = backend.extra_data(ctx.owner, token_set.uid, response, extra, {})
    return {key: value for key, value in data.items() if key == "_oidc_id_token_context"} or None


def _classify(error: SocialAuthBaseException) -> Literal["reauth", "config", "outage"]:
    provider_code = str(error.provider_code or "")
    if provider_code in CONFIG_PROVIDER_CODES or isinstance(error, AuthConfigurationError):
        return "config"
    if error.code in REAUTH_CODES or provider_code in REAUTH_PROVIDER_CODES:
        return "reauth"
    if error.stage == "refresh" and error.code in {"invalid_claim", "invalid_signature", "missing_claim"}:
        # A refreshed ID token for another subject or issuer: never retried, the user reconnects.
        return "reauth"
    # Timeouts, 5xx, 429, connection errors; anything else unexpected from the provider is also
    # treated as "try again later" (and never disables anything).
    return "outage"


def _retry_after_seconds(value: object) -> int | None:
    if value in (None, ""):
        return None
    try:
        seconds = int(str(value).strip())
    except ValueError:
        try:
            when = parsedate_to_datetime(str(value))
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = math.ceil((when - timezone.now()).total_seconds())
    return max(1, min(seconds, MAX_RETRY_AFTER))


def _record_refresh(
    token_set: TokenSet, ctx: _Context, *, message: str, data: dict, kind: str = Activity.Kind.REFRESH_FAILED
) -> None:
    activity.record(
        kind=kind,
        user=ctx.owner,
        actor=ctx.actor,
        provider=token_set.provider,
        uid=token_set.uid,
        message=message,
        data=data,
    )


def _apply_outcome(token_set: TokenSet, outcome: _Outcome, ctx: _Context) -> errors.TokenVaultError | None:
    """Write the outcome to the (locked or leased) row and record activity; return the error to raise."""
    now = timezone.now()
    title = provider_title(token_set.provider)
    token_set.lease_id, token_set.lease_expires_at = "", None
    if outcome.kind == "success":
        response = outcome.response or {}
        new_refresh = response.get("refresh_token")
        new_refresh = new_refresh if isinstance(new_refresh, str) and new_refresh else None
        refresh_token = new_refresh or _kept_refresh_token(token_set, None)
        token_set.owner_id = ctx.owner.pk  # (re)bind to the identity's current owner
        token_set.set_tokens(access_token=response["access_token"], refresh_token=refresh_token)
        expires_in = _int_or_none(response.get("expires_in"))
        received_at = outcome.received_at or now
        token_set.expires_at, token_set.expiry_assumed = _expiry(response, received_at)
        token_set.issued_at = received_at
        if response.get("token_type"):
            token_set.token_type = str(response["token_type"])[:40]
        refreshed_scopes = scope_rules.parse_granted(response.get("scope"))
        if refreshed_scopes:  # an absent or empty scope keeps what the grant had (RFC 6749 5.1)
            token_set.scopes = refreshed_scopes
            token_set.scopes_reported = True
        token_set.refreshed_at = now
        token_set.status = TokenSet.Status.ACTIVE
        token_set.fault_keyring = ""
        token_set.last_error_code = ""
        token_set.last_error_at = None
        token_set.retry_not_before = None
        token_set.version += 1
        token_set.save()
        if outcome.oidc_context:
            identity = UserSocialAuth.objects.get(pk=ctx.identity_id)
            identity.extra_data = {**(identity.extra_data or {}), **outcome.oidc_context}
            identity.save(update_fields=["extra_data", "modified"])
        _record_refresh(
            token_set,
            ctx,
            kind=Activity.Kind.TOKEN_REFRESHED,
            message=f"Refreshed the {title} token",
            data={
                "token_set": token_set.pk,
                "attempts": outcome.attempts,
                "expires_in": expires_in,
                "rotated_refresh_token": bool(new_refresh),
            },
        )
        logger.info(
            "Refreshed token set %s (%s) in %d attempt(s)", token_set.pk, token_set.provider, outcome.attempts
        )
        return None

    token_set.last_error_code = (outcome.provider_code or outcome.code)[:64]
    token_set.last_error_at = now
    data = {
        "token_set": token_set.pk,
        "code": outcome.code,
        "provider_code": outcome.provider_code,
        "attempts": outcome.attempts,
    }
    if outcome.kind == "reauth":
        token_set.status = TokenSet.Status.RECONNECT_REQUIRED
        token_set.version += 1
        token_set.save()
        _record_refresh(
            token_set, ctx, message=f"{title} refused to renew access; reconnect the account", data=data
        )
        logger.info(
            "Token set %s (%s): refresh refused (%s); reconnect required",
            token_set.pk,
            token_set.provider,
            token_set.last_error_code,
        )
        return _reauth_error(token_set, ctx.requested)
    if outcome.kind == "config":
        token_set.retry_not_before = now + timedelta(seconds=MISCONFIGURED_PAUSE)
        token_set.save()
        _record_refresh(
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
        if outcome.code == "decryption_failed":
            # This row's value is bad (or the keys are): flag it, stop retrying until the keys
            # change (issue 12.5).
            token_set.status = TokenSet.Status.VAULT_FAULT
            token_set.fault_keyring = _keyring_fingerprint()
            token_set.version += 1
            logger.error(
                "Token set %s (%s) flagged vault_fault (%s): not handed out or refreshed until reconnected",
                token_set.pk,
                token_set.provider,
                outcome.code,
            )
        token_set.save()
        error_class = errors.VaultFault if outcome.code == "decryption_failed" else errors.VaultKeyError
        return error_class(
            connection=token_set.provider,
            authorize_url=errors.authorize_url(token_set.provider, ctx.requested),
        )
    token_set.retry_not_before = now + timedelta(seconds=outcome.retry_after)
    token_set.save()
    _record_refresh(
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


def _mark_reconnect_required(token_set: TokenSet, ctx: _Context, *, code: str) -> None:
    token_set.status = TokenSet.Status.RECONNECT_REQUIRED
    token_set.last_error_code = code
    token_set.last_error_at = timezone.now()
    token_set.lease_id, token_set.lease_expires_at = "", None
    token_set.version += 1
    token_set.save()
    title = provider_title(token_set.provider)
    _record_refresh(
        token_set,
        ctx,
        message=f"The {title} token expired and cannot be renewed; reconnect the account",
        data={"token_set": token_set.pk, "code": code},
    )


@sensitive_variables()
def _detach_fresh_tokens(token_set: TokenSet, outcome: _Outcome, ctx: _Context) -> None:
    from .revocation import revoke_after_commit

    response = outcome.response or {}
    orphan = TokenSet.objects.create(
        identity=None,
        owner_id=ctx.owner.pk,
        provider=token_set.provider,
        uid=token_set.uid,
        status=TokenSet.Status.REVOKE_PENDING,
        detached_at=timezone.now(),
        token_type=str(response.get("token_type") or ""),
    )
    refresh = response.get("refresh_token")
    orphan.set_tokens(
        access_token=response["access_token"],
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
    )
    orphan.expires_at, orphan.expiry_assumed = _expiry(response, outcome.received_at or timezone.now())
    orphan.save()
    revoke_after_commit(orphan.pk)
