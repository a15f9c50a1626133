"""The agent API's token request: the key, its limits, the token, and the record of the hand-out.

``issue_token`` is what ``POST /api/v1/token`` (both its JSON and its RFC 8693 form) calls. When
the stored token is fresh, which is nearly every request, it costs one prepared query (the key,
its user, and the user's accounts and token sets for the connection) and one Redis round trip (the
rate limits and the record of the hand-out, staged for the activity table: ``vault.staged_records``);
anything else (a refresh, an error to explain) is counted first and goes through
``vault.get_access_token`` itself, so the two can never disagree about a token.

An error the user can fix (link an account, grant scopes, reconnect) comes back with the agent's
connect request in ``error.details``: the URL the agent shows its user.
"""

from __future__ import annotations

from django.views.decorators.debug import sensitive_variables
from social_django.models import UserSocialAuth

from . import access, agents, connect, errors, hotpath, keyformat
from .access import AccessToken
from .models import AgentKey
from .scopes import ScopeLimit

ACTIONABLE = (errors.ConnectionRequired, errors.InsufficientScope, errors.ReauthorizationRequired)


@sensitive_variables("raw_key", "token")
def issue_token(
    *,
    raw_key: str | None,
    ip_address: str | None,
    connection: str,
    scopes: list[str],
    account: int | None = None,
    login_hint: str = "",
    min_ttl: int = 60,
) -> AccessToken:
    """A fresh token for the agent key's user, recorded as handed to that agent.

    ``account`` picks an identity by id; ``login_hint`` (RFC 8693) by id, login or email.
    Raises ``InvalidKey``, ``RateLimited``, ``AccessDenied`` or the vault's error for the token.
    """
    if not raw_key or not keyformat.is_well_formed(raw_key):
        agents.refuse_key(ip_address=ip_address)
    found = hotpath.find_key_and_account(
        key_hash=keyformat.key_hash(raw_key), provider=connection, account_id=account
    )
    try:
        key = agents.check_usable(found.key)
    except agents.InvalidKey:
        agents.refuse_key(ip_address=ip_address)
    token = _stored_token(
        key, found.account, connection=connection, scopes=scopes, login_hint=login_hint, min_ttl=min_ttl
    )
    if token is not None:
        # Nearly every request: the limits and the record in one step (one Redis round trip).
        _record(key, token, connection=connection, ip_address=ip_address, admit=True)
        return token
    agents.admit(key, ip_address=ip_address)
    agents.check_allowed(key, connection=connection, scopes=scopes)
    token = _token_the_long_way(
        key,
        connection=connection,
        scopes=scopes,
        account=account,
        login_hint=login_hint,
        min_ttl=min_ttl,
        # The key's scope limit goes into the vault's own rule (``access.enforce_scope_limit``) on
        # both paths, so the hot path and ``get_access_token`` cannot disagree about what a key holds.
        limit=agents.scope_limit(key, connection=connection),
    )
    _record(key, token, connection=connection, ip_address=ip_address, admit=False)
    return token


def _stored_token(
    key: AgentKey,
    account: hotpath.ResolvedAccount | None,
    *,
    connection: str,
    scopes: list[str],
    login_hint: str,
    min_ttl: int,
) -> AccessToken | None:
    """The stored token, when it answers the request as it is: the key may have it, no login hint
    to resolve, no refresh or narrowing due. None: the long way, which also raises what is wrong."""
    if login_hint.strip():
        return None
    try:
        agents.check_allowed(key, connection=connection, scopes=scopes)
    except agents.AccessDenied:
        return None  # raised again on the long way, after the request is counted
    return access.stored_access_token(
        account,
        connection=connection,
        requested=scopes,
        min_ttl=min_ttl,
        limit=agents.scope_limit(key, connection=connection),
    )


def _record(
    key: AgentKey, token: AccessToken, *, connection: str, ip_address: str | None, admit: bool
) -> None:
    agents.record_token_issued(
        key=key,
        connection=connection,
        identity_id=token.account,
        account_name=token.account_name,
        scopes=list(token.scopes),
        ip_address=ip_address,
        admit=admit,
    )


def _token_the_long_way(
    key: AgentKey,
    *,
    connection: str,
    scopes: list[str],
    account: int | None,
    login_hint: str,
    min_ttl: int,
    limit: ScopeLimit,
) -> AccessToken:
    """``get_access_token`` (refresh, or the error), with the connect request for a fixable error."""
    try:
        if login_hint.strip():
            account = _account_from_hint(key, connection, login_hint)
        return access.get_access_token(
            key.user, connection, scopes=scopes, account=account, min_ttl=min_ttl, limit=limit
        )
    except ACTIONABLE as error:
        error.details = connect.for_agent_error(error, agent_key=key, connection=connection, scopes=scopes)
        raise


def _account_from_hint(key: AgentKey, connection: str, hint: str) -> int:
    """``login_hint``: an identity id, or the account's login/name or email at the provider."""
    found = identity_matching_hint(user_id=key.user_id, provider=connection, hint=hint)
    if found is None:
        raise errors.ConnectionRequired(
            f"No linked {connection} account matches login_hint.", connection=connection
        )
    return found


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
