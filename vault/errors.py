"""The vault's errors: one base class with a stable ``code``, a message a person can read, the HTTP
status the agent API answers with (README "Agent API") and, where a person can fix the problem by
linking or re-linking an account, an ``authorize_url``.

``ERROR_TABLE`` declares every code an agent can receive, once: its HTTP status, its RFC 6749 /
RFC 8693 counterpart (the token-exchange form's ``error``), whether it may carry ``Retry-After`` or
an ``authorize_url``, and what it means. The classes take their status from it and are checked
against it when defined; the RFC 8693 mapping and the OpenAPI document's error text are generated
from it; a test holds the README's table to it.

Messages never contain a token, a key or a provider's raw error text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlencode

from django.conf import settings
from django.urls import reverse


@dataclass(frozen=True)
class ErrorCode:
    """One row of the error table."""

    code: str
    #: The agent API's HTTP status (the first); any other status a refinement of it may use.
    statuses: tuple[int, ...]
    #: The RFC 6749 / RFC 8693 ``error`` the token-exchange form answers instead, with its status.
    rfc_error: str
    rfc_status: int
    description: str
    #: May carry ``Retry-After`` (and ``retry_after`` in the body).
    retry_after: bool = False
    #: May carry ``authorize_url`` (with ``connect_request`` for an agent): the user can fix it.
    authorize_url: bool = False

    @property
    def status(self) -> int:
        return self.statuses[0]


ERROR_TABLE: dict[str, ErrorCode] = {
    row.code: row
    for row in (
        ErrorCode(
            "invalid_request",
            (400, 405),
            "invalid_request",
            400,
            "The request is malformed: a bad field (scope names are RFC 6749 scope tokens: printable "
            "ASCII, no spaces, quotes or backslashes; an unknown `connection`), a key in the URL, or a "
            "body the server cannot read (nested too deep, too many form fields, over 16 kB, a broken "
            "encoding); 405 for a wrong method.",
        ),
        ErrorCode(
            "invalid_token",
            (401,),
            "invalid_request",
            400,
            "The agent key is missing, malformed, expired or revoked.",
        ),
        ErrorCode(
            "access_denied",
            (403,),
            "invalid_target",
            400,
            "The key may not use that provider or scope; with `reason` `grant_exceeds_key_scopes`, "
            "`allowed_scopes` and `scopes_beyond_limit` when the account granted more than the key's "
            "scope limit and the provider cannot narrow a token (GitHub, OpenID Connect).",
        ),
        ErrorCode(
            "connection_required",
            (403,),
            "invalid_target",
            400,
            "No linked account for the provider (with `required_scopes`): the user links one at "
            "`authorize_url`.",
            authorize_url=True,
        ),
        ErrorCode(
            "insufficient_scope",
            (403,),
            "invalid_scope",
            400,
            "The linked account has not granted the scopes asked for (`granted_scopes`, "
            "`required_scopes`): the user grants more at `authorize_url`.",
            authorize_url=True,
        ),
        ErrorCode(
            "reauthorization_required",
            (403,),
            "invalid_grant",
            400,
            "The provider no longer honours the stored grant (revoked, expired refresh token): the user "
            "connects the account again at `authorize_url`.",
            authorize_url=True,
        ),
        ErrorCode(
            "not_found",
            (404,),
            "invalid_request",
            400,
            "Nothing at this address, or nothing of this key's there (also an id of the wrong shape).",
        ),
        ErrorCode(
            "rate_limited",
            (429,),
            "temporarily_unavailable",
            429,
            "The key, its user or its address asked too often; retry after `Retry-After` seconds.",
            retry_after=True,
        ),
        ErrorCode(
            "provider_unavailable",
            (503,),
            "temporarily_unavailable",
            503,
            "The provider timed out, failed or rate-limited the site; nothing was changed. A refresh "
            "(retries and waiting for another caller's refresh included) gives up after "
            "`VAULT_REFRESH_DEADLINE`, 10 s by default.",
            retry_after=True,
        ),
        ErrorCode(
            "provider_misconfigured",
            (503,),
            "temporarily_unavailable",
            503,
            "The provider rejected the site's client credentials: the site's staff must act.",
        ),
        ErrorCode(
            "vault_unavailable",
            (503,),
            "temporarily_unavailable",
            503,
            "The vault cannot read its own data (the site's staff must act); with `Retry-After` when the "
            "database or the rate-limit store did not answer; with `authorize_url` when the stored token "
            "cannot be used (it did not decrypt, or is blank): the account is flagged and must be "
            "reconnected.",
            retry_after=True,
            authorize_url=True,
        ),
        ErrorCode(
            "server_error",
            (500,),
            "server_error",
            500,
            "Something went wrong on the site's side (answered in JSON like every error under `/api/`).",
        ),
    )
}

#: What the token-exchange form answers for an error the table does not know (the base class).
_RFC_FALLBACK = ("temporarily_unavailable", 503)


def rfc_error(code: str) -> tuple[str, int]:
    """The RFC 6749 / RFC 8693 ``error`` and HTTP status the token-exchange form answers for ``code``."""
    row = ERROR_TABLE.get(code)
    return (row.rfc_error, row.rfc_status) if row else _RFC_FALLBACK


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
    return f"{settings.SITE_URL}{reverse('accounts:connections')}?{urlencode(query)}"


class TokenVaultError(Exception):
    """Base of every error the vault raises to callers of ``vault.get_access_token`` and friends."""

    code = "vault_error"
    status = 500
    default_message = "The token vault could not complete the request."

    def __init_subclass__(cls, **kwargs: object) -> None:
        """A class's code must be in ``ERROR_TABLE``; its status comes from there (or is one the
        table lists for it); a class that says when to retry must have a code that may say so."""
        super().__init_subclass__(**kwargs)
        if cls.code == TokenVaultError.code:
            return  # an abstract refinement (``RetryLater``): checked where a code is given
        row = ERROR_TABLE.get(cls.code)
        if row is None:
            raise TypeError(f"{cls.__name__}: error code {cls.code!r} is not in vault.errors.ERROR_TABLE")
        if "code" in cls.__dict__ and "status" not in cls.__dict__:
            cls.status = row.status
        if cls.status not in row.statuses:
            raise TypeError(f"{cls.__name__}: status {cls.status} is not one ERROR_TABLE gives {cls.code!r}")
        if hasattr(cls, "default_retry_after") and not row.retry_after:
            raise TypeError(f"{cls.__name__}: ERROR_TABLE says {cls.code!r} carries no Retry-After")

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
        """The agent API's error body (README "Agent API"): code, description, and any fix."""
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
    default_message = "The request is not valid."


class NotFound(TokenVaultError):
    """Nothing at that address, or nothing of this agent's there (the two are answered alike)."""

    code = "not_found"
    default_message = "There is nothing at this address."


class ConnectionRequired(TokenVaultError):
    """The user has no (such) linked account for the provider; linking one fixes it."""

    code = "connection_required"
    default_message = "No linked account for this provider."


class InsufficientScope(TokenVaultError):
    """The linked account's grant lacks scopes that were asked for; an incremental grant fixes it."""

    code = "insufficient_scope"
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
    default_message = "The provider is unavailable right now. Try again later."


class ProviderMisconfigured(TokenVaultError):
    """The provider rejected this site's client credentials: a fault for staff, not the user."""

    code = "provider_misconfigured"
    default_message = (
        "This site's connection to the provider is misconfigured; the site's staff have been told."
    )


class VaultUnavailable(TokenVaultError):
    """The vault cannot read its own data: keys missing or a stored value that does not verify."""

    code = "vault_unavailable"
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
