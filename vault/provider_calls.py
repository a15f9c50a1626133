"""The provider call of a refresh: social-core's real ``refresh_token()`` under one deadline,
with short retries for outages, and its result classified (success, reconnect, configuration,
outage, vault fault) as an ``Outcome`` that ``vault.outcomes`` writes.

Apart from the refresh strategies (``vault.refresh``) because both of them, and the narrowed
refresh of ``vault.access``, make this same call; nothing here writes to the database.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from http import cookiejar
from typing import Any, Literal

import requests
from django.conf import settings
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables
from social_core.backends.base import BaseAuth
from social_core.backends.open_id_connect import OpenIdConnectAuth
from social_core.exceptions import AuthConfigurationError, AuthProviderError, SocialAuthBaseException
from social_core.utils import http_error, redact_request_error, user_agent
from social_django.models import UserSocialAuth
from social_django.utils import load_backend, load_strategy

from accounts.models import User

from . import errors
from .models import TokenSet
from .responses import is_plausible_access_token

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
MAX_RETRY_AFTER = 3600
#: The code a refresh answered 429 is stored under (``TokenSet.last_error_code``).
RATE_LIMITED = "rate_limited"

REAUTH_CODES = frozenset(
    {"reauthentication_required", "credential_rejected", "token_revoked", "authorization_code_rejected"}
)
REAUTH_PROVIDER_CODES = frozenset({"invalid_grant", "bad_refresh_token", "invalid_token"})
CONFIG_PROVIDER_CODES = frozenset({"invalid_client", "incorrect_client_credentials", "unauthorized_client"})


def refresh_deadline() -> float:
    """Seconds a token request may spend on a provider refresh, retries and waiting included."""
    return max(1.0, float(getattr(settings, "VAULT_REFRESH_DEADLINE", 10.0)))


@dataclass
class RefreshContext:
    """Who asks for a refresh of which token set, and what they need from it."""

    token_set_id: int
    identity_id: int
    owner: User
    min_ttl: int
    force: bool = False
    actor: User | None = None
    requested: tuple[str, ...] = ()


@dataclass
class Outcome:
    """What a provider call came to; ``response`` is the raw token response (never shown)."""

    kind: Literal["success", "reauth", "config", "outage", "vault"]
    response: dict[str, Any] | None = field(default=None, repr=False)
    received_at: datetime | None = None
    code: str = ""
    provider_code: str = ""
    retry_after: int = OUTAGE_RETRY_AFTER
    attempts: int = 0
    oidc_context: dict[str, Any] | None = None


@sensitive_variables()
def call_provider(token_set: TokenSet, ctx: RefreshContext, *, scope: tuple[str, ...] = ()) -> Outcome:
    """Call the backend's real ``refresh_token()`` with short retries for outages, all within one
    deadline (``refresh_deadline()``, issue 12: three 5 s timeouts kept an agent waiting 16 s).
    ``scope`` asks for a token narrowed to those scopes (``enforce_scope_limit``)."""
    deadline = time.monotonic() + refresh_deadline()
    try:
        refresh_token = token_set.read_refresh_token()
    except errors.VaultKeyError as error:
        logger.error("Token set %s: the stored refresh token's key is missing (%s)", token_set.pk, error.code)
        return Outcome("vault", code="vault_key_missing")
    except errors.VaultUnavailable:
        return Outcome("vault", code="decryption_failed")  # flagged and logged once by vault.outcomes
    try:
        backend = load_backend(load_strategy(), token_set.provider, redirect_uri=None)
    except Exception:  # a provider no longer configured is a configuration fault
        return Outcome("config", code="backend_missing")
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
                return Outcome("outage", code="malformed_token_response", attempts=attempts)
            kind = _classify(error)
            retry_after = _retry_after_seconds(error.retry_after)
            code = error.code
            provider_code = str(error.provider_code or "")[:64]
            if getattr(error, "status_code", None) == 429 or code == RATE_LIMITED:
                # One code for a 429 whatever body came with it (GitHub's has no OAuth ``error``,
                # Google's an error object): ``vault_refresh`` pauses the provider on it.
                code, provider_code = RATE_LIMITED, ""
            pause = RETRY_BACKOFF[min(attempts - 1, len(RETRY_BACKOFF) - 1)] if RETRY_BACKOFF else 0
            # A short Retry-After (a 429 or 503 asking for a second or two) is waited out in full.
            pause = max(pause, retry_after or 0)
            if (
                kind == "outage"
                and attempts <= MAX_RETRIES
                and (retry_after is None or retry_after <= MAX_INLINE_RETRY_AFTER)
                # Another attempt only if it has a second to run before the deadline.
                and time.monotonic() + pause + 1 < deadline
            ):
                time.sleep(pause)
                continue
            return Outcome(
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
            return Outcome("outage", code="unexpected_error", attempts=attempts)
        if not isinstance(response, dict) or not is_plausible_access_token(response.get("access_token")):
            # Never stored or handed out (issue 12.4); a provider fault, so it is paused like one.
            logger.warning(
                "Token set %s (%s): the refresh response had no usable access token",
                token_set.pk,
                token_set.provider,
            )
            return Outcome("outage", code="malformed_token_response", attempts=attempts)
        return Outcome(
            "success",
            response=response,
            received_at=received_at,
            attempts=attempts,
            oidc_context=oidc_context,
        )


def _bound_backend(backend, *, deadline: float, scope: tuple[str, ...]) -> None:
    """Give each of this backend's HTTP requests at most the time left before ``deadline``, send
    them over this thread's session (``http_session``) and, when narrowing, send ``scope`` with
    the refresh grant (RFC 6749 6). Set on the instance: ``load_backend`` makes a new one per
    call, and social-core has no per-call option for any of these."""
    default = float(backend.setting("REQUESTS_TIMEOUT") or backend.setting("URLOPEN_TIMEOUT") or 5.0)
    # A backend with its own ``request`` keeps it; the others (GitHub, Google, OIDC) share ``_send``.
    own = backend.request if type(backend).request is not BaseAuth.request else None

    def request(url: str, **kwargs: Any):
        left = max(0.5, deadline - time.monotonic())
        timeout = kwargs.get("timeout") or default
        if isinstance(timeout, tuple):
            kwargs["timeout"] = tuple(min(float(part), left) for part in timeout)
        else:
            kwargs["timeout"] = min(float(timeout), left)
        return own(url, **kwargs) if own is not None else _send(backend, url, **kwargs)

    backend.request = request
    if scope:
        params = backend.refresh_token_params

        def refresh_token_params(token: str, *args: Any, **kwargs: Any) -> dict[str, str]:
            return {**params(token, *args, **kwargs), "scope": " ".join(scope)}

        backend.refresh_token_params = refresh_token_params


#: This thread's ``requests`` session: see ``http_session``.
_http = threading.local()


class _NoCookies(cookiejar.DefaultCookiePolicy):
    """A thread's session carries every person's refreshes one after another: a cookie a provider
    set while answering one must never ride along with the next person's request."""

    def set_ok(self, cookie, request) -> bool:
        return False

    def return_ok(self, cookie, request) -> bool:
        return False


def http_session() -> requests.Session:
    """The session this thread sends provider calls through. One per thread (a ``vault_refresh``
    worker, a gunicorn thread), so its connection to a provider is kept alive from one refresh to
    the next instead of a new TCP (and TLS) handshake each time (issue 17.4); it keeps no cookies
    and no credentials: every request brings its own, as social-core sends them."""
    session = getattr(_http, "session", None)
    if session is None:
        session = requests.Session()
        session.cookies.set_policy(_NoCookies())
        _http.session = session
    return session


def close_http_session() -> None:
    """Close this thread's provider connections (a worker thread at its end, or a broken connection)."""
    session = getattr(_http, "session", None)
    _http.session = None
    if session is not None:
        session.close()


# social-core's mapping of transport failures (``BaseAuth.request``), first match wins; None is
# ``AuthProviderError``'s own code.
_INVALID_URL = (
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidSchema,
    requests.exceptions.MissingSchema,
)
_TRANSPORT_ERRORS: tuple[tuple[type[Exception], str | None], ...] = (
    (requests.exceptions.SSLError, "tls_error"),
    (requests.Timeout, "timeout"),
    (requests.ConnectionError, "connection_failed"),
    (requests.RequestException, None),
)


def _send(
    backend,
    url: str,
    *,
    method: str = "GET",
    headers: dict | None = None,
    data: dict | None = None,
    json: dict | None = None,
    auth: Any = None,
    params: dict | None = None,
    timeout: Any = None,
    stage: str = "user_info",
) -> requests.Response:
    """social-core's ``BaseAuth.request`` (same headers, proxies, TLS check and error mapping, URLs
    redacted from errors), sent through ``http_session()`` rather than a new session per call."""
    headers = dict(headers or {})
    if backend.SEND_USER_AGENT and "User-Agent" not in headers:
        headers["User-Agent"] = backend.setting("USER_AGENT") or user_agent()
    try:
        response = http_session().request(
            method,
            url,
            headers=headers,
            data=data,
            json=json,
            auth=auth,
            params=params,
            timeout=timeout,
            proxies=backend.setting("PROXIES"),
            verify=backend.setting("VERIFY_SSL", True),
        )
    except _INVALID_URL as error:
        redact_request_error(error, request_url=url)
        raise AuthConfigurationError(backend, code="invalid_setting", parameter="url", stage=stage) from error
    except requests.RequestException as error:
        # A connection that failed (timed out mid-answer, closed by the provider as it was reused)
        # is not used again: the next call, ``call_provider``'s retry included, starts afresh.
        close_http_session()
        redact_request_error(error, request_url=url)
        code = next(code for kind, code in _TRANSPORT_ERRORS if isinstance(error, kind))
        raise AuthProviderError(backend, code=code, stage=stage) from error
    try:
        response.raise_for_status()
    except requests.HTTPError as error:
        redact_request_error(error, request_url=url)
        raise http_error(backend, error, stage=stage) from error
    return response


def _check_oidc_continuity(backend, ctx: RefreshContext, token_set: TokenSet, response: dict) -> dict | None:
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
