"""The vault's errors: one base class with a stable ``code``, a message a person can read, the HTTP
status the agent API answers with (DESIGN.md "Contract") and, where a person can fix the problem by
linking or re-linking an account, an ``authorize_url``.

Messages never contain a token, a key or a provider's raw error text.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlencode

from django.conf import settings


def authorize_url(provider: str, scopes: Iterable[str] = ()) -> str:
    """Where a person links ``provider`` (asking for ``scopes`` on top of the configured ones).

    The connections page shows a highlighted "Connect <Provider>" form for these query parameters;
    the begin view sends the scopes to the provider, so the grant is incremental.
    """
    query: list[tuple[str, str]] = [("connect", provider)]
    seen: set[str] = set()
    for scope in scopes:
        if scope and scope not in seen:
            seen.add(scope)
            query.append(("scope", scope))
    return f"{settings.SITE_URL}/settings/connections/?{urlencode(query)}"


class TokenVaultError(Exception):
    """Base of every error the vault raises to callers of ``vault.get_access_token`` and friends."""

    code = "vault_error"
    status = 500
    default_message = "The token vault could not complete the request."

    def __init__(
        self,
        message: str | None = None,
        *,
        connection: str = "",
        authorize_url: str | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.connection = connection
        self.authorize_url = authorize_url
        #: What the agent API adds for an agent (its connect request); see ``vault.issuing``.
        self.details: dict[str, object] = {}
        super().__init__(self.message)

    def as_dict(self) -> dict[str, object]:
        """The agent API's error body (DESIGN.md): code, description, and the fix where there is one."""
        body: dict[str, object] = {"error": self.code, "error_description": self.message}
        if self.authorize_url:
            body["authorize_url"] = self.authorize_url
        body.update(self.details)
        return body

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, connection={self.connection!r})"


class InvalidRequest(TokenVaultError):
    """The caller asked for something malformed (unknown connection name, bad ``min_ttl``...)."""

    code = "invalid_request"
    status = 400
    default_message = "The request is not valid."


class NotFound(TokenVaultError):
    """Nothing at that address, or nothing of this agent's there (the two are answered alike)."""

    code = "not_found"
    status = 404
    default_message = "There is nothing at this address."


class ConnectionRequired(TokenVaultError):
    """The user has no (such) linked account for the provider; linking one fixes it."""

    code = "connection_required"
    status = 403
    default_message = "No linked account for this provider."


class InsufficientScope(TokenVaultError):
    """The linked account's grant lacks scopes that were asked for; an incremental grant fixes it."""

    code = "insufficient_scope"
    status = 403
    default_message = "The linked account has not granted the access that was asked for."

    def __init__(
        self,
        message: str | None = None,
        *,
        granted: Iterable[str] = (),
        missing: Iterable[str] = (),
        **kwargs,
    ) -> None:
        self.granted = tuple(granted)
        self.missing = tuple(missing)
        super().__init__(message, **kwargs)

    def as_dict(self) -> dict[str, object]:
        body = super().as_dict()
        body["required_scopes"] = list(self.missing)
        body["granted_scopes"] = list(self.granted)
        return body


class ScopeLimitExceeded(TokenVaultError):
    """The account granted more than the caller may hold and the provider cannot narrow a token.

    Answered as ``access_denied`` (the holder is not allowed this token) with ``reason``
    ``grant_exceeds_key_scopes`` and both scope lists, so the agent can say what to change: allow
    the key the whole grant, or link an account with a narrower grant.
    """

    code = "access_denied"
    status = 403
    reason = "grant_exceeds_key_scopes"
    default_message = "The linked account granted more than this key may receive."

    def __init__(
        self,
        message: str | None = None,
        *,
        granted: Iterable[str] = (),
        allowed: Iterable[str] = (),
        beyond: Iterable[str] = (),
        **kwargs,
    ) -> None:
        self.granted = tuple(granted)
        self.allowed = tuple(allowed)
        self.beyond = tuple(beyond)
        super().__init__(message, **kwargs)

    def as_dict(self) -> dict[str, object]:
        return {
            **super().as_dict(),
            "reason": self.reason,
            "granted_scopes": list(self.granted),
            "allowed_scopes": list(self.allowed),
            "scopes_beyond_limit": list(self.beyond),
        }


class ReauthorizationRequired(TokenVaultError):
    """The provider no longer honours the stored grant (revoked, expired refresh token...)."""

    code = "reauthorization_required"
    status = 403
    default_message = "The linked account must be connected again."


class RetryLater(TokenVaultError):
    """An error that passes: ``retry_after`` seconds (the API's ``Retry-After``) say when to retry."""

    default_retry_after = 30

    def __init__(self, message: str | None = None, *, retry_after: int | None = None, **kwargs) -> None:
        self.retry_after = max(1, int(self.default_retry_after if retry_after is None else retry_after))
        super().__init__(message, **kwargs)

    def as_dict(self) -> dict[str, object]:
        return {**super().as_dict(), "retry_after": self.retry_after}


class ProviderUnavailable(RetryLater):
    """The provider timed out, failed or rate-limited us; nothing was changed; retry later."""

    code = "provider_unavailable"
    status = 503
    default_message = "The provider is unavailable right now. Try again later."


class ProviderMisconfigured(TokenVaultError):
    """The provider rejected this site's client credentials: a fault for staff, not the user."""

    code = "provider_misconfigured"
    status = 503
    default_message = (
        "This site's connection to the provider is misconfigured; the site's staff have been told."
    )


class VaultUnavailable(TokenVaultError):
    """The vault cannot read its own data: keys missing or a stored value that does not verify."""

    code = "vault_unavailable"
    status = 503
    default_message = "The token vault is unavailable; the site's staff have been told."


class VaultKeyError(VaultUnavailable):
    """``VAULT_KEYS`` is missing or malformed, or a value names a key that is not configured."""


class DecryptionFailed(VaultUnavailable):
    """A stored value failed authentication (tampered, moved to another row, or wrong key)."""

    default_message = "A stored token could not be verified and was not used."


class VaultFault(DecryptionFailed):
    """The token set is flagged: a stored value did not decrypt or is impossible (blank...). It is
    never handed out or retried; reconnecting the account stores a new one (``authorize_url``)."""

    default_message = (
        "The stored token for this account cannot be used; reconnect the account "
        "(the site's staff have been told)."
    )


class RateLimited(RetryLater):
    """An agent key, its user or its address asked too often."""

    code = "rate_limited"
    status = 429
    default_message = "Too many requests; wait and retry."
    default_retry_after = 60


class DatabaseBusy(RetryLater, VaultUnavailable):
    """The database gave up on the request (a deadlock, a lock timeout, a lost connection): nothing
    was handed out; the same request a moment later normally succeeds."""

    default_message = "The token vault is busy; try again in a moment."
    default_retry_after = 2


class LimitsUnavailable(RetryLater, VaultUnavailable):
    """The shared store that counts rate limits (Redis) did not answer: refuse rather than not count."""

    default_message = "The token vault cannot count requests right now; try again shortly."
    default_retry_after = 5
