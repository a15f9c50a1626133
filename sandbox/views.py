"""HTTP endpoints of the sandbox's Google and GitHub stand-ins, answering in each provider's own shapes.

The browser-facing pages (the sign-in form, the index) keep Django's CSRF protection; only the
server-to-server endpoints (token, userinfo, revoke, the GitHub API) are CSRF-exempt, as they are
called by backends with client credentials or bearer tokens, never with cookies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.html import escape
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import oauth, state
from .models import FAILURE_MODE_CHOICES, Grant
from .oauth import GITHUB, GOOGLE

TITLES = {GOOGLE: "Sandbox Google", GITHUB: "Sandbox GitHub"}

_SINGLE_PARAMS = (
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "nonce",
    "prompt",
    "login_hint",
    "login",
    "access_type",
    "include_granted_scopes",
    "max_age",
)
_PKCE_CHALLENGE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_GITHUB_DOCS = (
    "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors"
)
_GITHUB_ERRORS = {
    "bad_verification_code": ("The code passed is incorrect or expired.", "#bad-verification-code"),
    "bad_refresh_token": ("The refresh token passed is incorrect or expired.", "#bad-refresh-token"),
    "incorrect_client_credentials": (
        "The client_id and/or client_secret passed are incorrect.",
        "#incorrect-client-credentials",
    ),
    "redirect_uri_mismatch": (
        "The redirect_uri MUST match the registered callback URL for this application.",
        "#redirect-uri-mismatch2",
    ),
    "unsupported_grant_type": ("The grant type is not supported.", ""),
}
_GITHUB_REASONS = {"redirect_mismatch": "redirect_uri_mismatch", "bad_refresh": "bad_refresh_token"}
_GOOGLE_REASONS = {
    "bad_code": ("invalid_grant", "Malformed auth code."),
    "code_expired": ("invalid_grant", "Bad Request"),
    "code_reused": ("invalid_grant", "Bad Request"),
    "redirect_mismatch": ("redirect_uri_mismatch", "Bad Request"),
    "pkce_missing": ("invalid_grant", "Missing code verifier."),
    "pkce_mismatch": ("invalid_grant", "Invalid code verifier."),
    "bad_refresh": ("invalid_grant", "Token has been expired or revoked."),
    "invalid_scope": ("invalid_scope", "Some requested scopes were invalid."),
}
_GITHUB_API_DOCS = "https://docs.github.com/rest"


# --- Small helpers ------------------------------------------------------------------------------------


def _json(data: Any, status: int = 200) -> JsonResponse:
    """A JSON answer that no cache keeps (token responses must not be cached, RFC 6749 5.1)."""
    response = JsonResponse(data, status=status, safe=False)
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response


def _basic_auth(request: HttpRequest) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _bearer(request: HttpRequest, schemes: tuple[str, ...]) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() in schemes and value.strip():
        return value.strip()
    return None


def _client_credentials(request: HttpRequest, data: Any) -> tuple[str, str]:
    """HTTP basic when sent, else ``client_id``/``client_secret`` in the body (both providers take either)."""
    return _basic_auth(request) or (data.get("client_id") or "", data.get("client_secret") or "")


def _with_params(url: str, params: dict[str, str | None]) -> str:
    parts = urlsplit(url)
    extra = urlencode([(key, value) for key, value in params.items() if value is not None])
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _avatar_url(request: HttpRequest, grant: Grant) -> str:
    return request.build_absolute_uri(
        reverse("sandbox:avatar", kwargs={"provider": grant.provider, "subject": grant.subject})
    )


def _display_name(grant: Grant) -> str:
    return grant.name or grant.email.rpartition("@")[0] or grant.email


# --- Failure modes ----------------------------------------------------------------------------------


def _failure_response(provider: str) -> HttpResponse | None:
    """The outage the provider is set to simulate at its token endpoint, if any."""
    mode = state.get_failure_mode(provider)
    if mode == "slow":
        time.sleep(float(getattr(settings, "SANDBOX_SLOW_SECONDS", 6)))
    elif mode == "server_error":
        return _json(
            {
                "error": "server_error",
                "error_description": f"{TITLES[provider]} simulates an outage (failure mode server_error).",
            },
            status=503,
        )
    elif mode == "rate_limited":
        response = _json(
            {
                "error": "rate_limit_exceeded",
                "error_description": f"{TITLES[provider]} simulates rate limits (failure mode rate_limited).",
            },
            status=429,
        )
        response["Retry-After"] = "30"
        return response
    return None


# --- Authorization (the sign-in page) -------------------------------------------------------------


class AuthorizeRefused(Exception):
    """An authorize request the stand-in will not act on: shown as a page, never redirected."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message


@dataclass(frozen=True)
class AuthorizeRequest:
    provider: str
    client_id: str
    redirect_uri: str
    state: str | None
    scopes: list[str]
    offline: bool
    include_granted_scopes: bool
    prompt: frozenset[str]
    login_hint: str
    nonce: str
    code_challenge: str
    code_challenge_method: str


def _check_redirect_uri(request: HttpRequest, uri: str) -> None:
    """Only absolute http(s) URLs on the site's own host (``SITE_URL``, as a real provider knows the
    registered callback), never the host the request named: never an open redirect."""
    if not uri:
        raise AuthorizeRefused("invalid_request", "Missing required parameter: redirect_uri.")
    try:
        parts = urlsplit(uri)
    except ValueError:
        raise AuthorizeRefused("invalid_request", "redirect_uri is not a valid URL.") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise AuthorizeRefused("invalid_request", "redirect_uri must be an absolute http:// or https:// URL.")
    if "#" in uri or parts.username is not None or parts.password is not None:
        raise AuthorizeRefused("invalid_request", "redirect_uri must not contain a fragment or user info.")
    host = urlsplit(str(settings.SITE_URL)).netloc
    if not url_has_allowed_host_and_scheme(uri, allowed_hosts={host}, require_https=False):
        raise AuthorizeRefused(
            "redirect_uri_mismatch",
            f"redirect_uri must point at this site ({host}). The sandbox never sends a code to another host.",
        )


def _parse_authorize(request: HttpRequest, provider: str) -> AuthorizeRequest:
    params = request.GET
    for name in _SINGLE_PARAMS:
        if len(params.getlist(name)) > 1:
            raise AuthorizeRefused("invalid_request", f"Parameter {name} was sent more than once.")
    client_id = params.get("client_id", "")
    if not client_id:
        raise AuthorizeRefused("invalid_request", "Missing required parameter: client_id.")
    if not oauth.known_client(provider, client_id):
        expected, _secret = oauth.client_credentials(provider)
        raise AuthorizeRefused(
            "invalid_client",
            f"The OAuth client was not found. This stand-in serves only the client {expected!r} "
            f"(set by the site's SOCIAL_AUTH_*_KEY setting).",
        )
    redirect_uri = params.get("redirect_uri", "")
    _check_redirect_uri(request, redirect_uri)
    response_type = params.get("response_type")
    if provider == GOOGLE and response_type is None:
        raise AuthorizeRefused("invalid_request", "Missing required parameter: response_type.")
    if response_type is not None and response_type != "code":
        raise AuthorizeRefused(
            "unsupported_response_type", f"Unsupported response_type {response_type!r}: only 'code' is."
        )
    separator = r"\s+" if provider == GOOGLE else r"[\s,]+"
    scopes = list(dict.fromkeys(s for s in re.split(separator, params.get("scope", "")) if s))
    if provider == GOOGLE and not scopes:
        raise AuthorizeRefused("invalid_request", "Missing required parameter: scope.")
    access_type = params.get("access_type", "online")
    if provider == GOOGLE and access_type not in ("online", "offline"):
        raise AuthorizeRefused(
            "invalid_request", f"Invalid access_type {access_type!r}: use online or offline."
        )
    challenge = params.get("code_challenge", "")
    method = ""
    if challenge:
        method = params.get("code_challenge_method") or ("plain" if provider == GOOGLE else "")
        allowed_methods = ("S256", "plain") if provider == GOOGLE else ("S256",)
        if method not in allowed_methods:
            raise AuthorizeRefused(
                "invalid_request", f"code_challenge_method must be one of {', '.join(allowed_methods)}."
            )
        if not _PKCE_CHALLENGE.match(challenge):
            raise AuthorizeRefused("invalid_request", "code_challenge must be 43 to 128 URL-safe characters.")
    hint = params.get("login_hint" if provider == GOOGLE else "login", "")
    return AuthorizeRequest(
        provider=provider,
        client_id=client_id,
        redirect_uri=redirect_uri,
        state=params.get("state"),
        scopes=scopes,
        offline=provider == GOOGLE and access_type == "offline",
        include_granted_scopes=provider == GOOGLE and params.get("include_granted_scopes") == "true",
        prompt=frozenset(params.get("prompt", "").split()),
        login_hint=hint if "@" in hint else "",
        nonce=params.get("nonce", ""),
        code_challenge=challenge,
        code_challenge_method=method,
    )


def _render_authorize(
    request: HttpRequest,
    req: AuthorizeRequest,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> HttpResponse:
    context = {
        "provider": req.provider,
        "title": TITLES[req.provider],
        "is_google": req.provider == GOOGLE,
        "client_id": req.client_id,
        "redirect_host": urlsplit(req.redirect_uri).netloc,
        "offline": req.offline,
        "scopes": [
            {"value": scope, "id": f"scope-{index}", "checked": scope in values["scopes"]}
            for index, scope in enumerate(req.scopes)
        ],
        "values": values,
        "errors": errors or {},
        "action": request.get_full_path(),
    }
    return render(request, "sandbox/authorize.html", context, status=status)


def _refused(request: HttpRequest, provider: str, refused: AuthorizeRefused) -> HttpResponse:
    context = {"title": TITLES[provider], "error": refused.error, "message": refused.message}
    return render(request, "sandbox/authorize_error.html", context, status=400)


def _deny_params(req: AuthorizeRequest, error: str) -> dict[str, str | None]:
    if req.provider == GITHUB:
        return {
            "error": error,
            "error_description": "The user has denied your application access.",
            "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#access-denied",
            "state": req.state,
        }
    return {"error": error, "state": req.state}


@never_cache
@require_http_methods(["GET", "POST"])
def _authorize(request: HttpRequest, provider: str) -> HttpResponse:
    try:
        req = _parse_authorize(request, provider)
    except AuthorizeRefused as refused:
        return _refused(request, provider, refused)
    if request.method == "GET":
        if provider == GOOGLE and "none" in req.prompt:
            # The stand-in has no signed-in session of its own, so a silent request cannot succeed.
            return HttpResponseRedirect(_with_params(req.redirect_uri, _deny_params(req, "login_required")))
        values = {"email": req.login_hint, "name": "", "email_verified": True, "email_public": False}
        return _render_authorize(request, req, {**values, "scopes": set(req.scopes)})

    decision = request.POST.get("decision")
    if decision == "deny":
        return HttpResponseRedirect(_with_params(req.redirect_uri, _deny_params(req, "access_denied")))
    values = {
        "email": request.POST.get("email", "").strip(),
        "name": request.POST.get("name", "").strip(),
        "email_verified": bool(request.POST.get("email_verified")),
        "email_public": bool(request.POST.get("email_public")),
        "scopes": set(request.POST.getlist("scope")),
    }
    errors: dict[str, str] = {}
    try:
        validate_email(values["email"])
    except ValidationError:
        errors["email"] = "Enter a valid email address, such as ada@example.com."
    if len(values["name"]) > 200:
        errors["name"] = "Keep the name under 200 characters."
    if decision != "allow":
        errors["decision"] = "Choose Allow or Deny."
    if errors:
        return _render_authorize(request, req, values, errors)
    authorization = oauth.authorize(
        oauth.Consent(
            provider=provider,
            client_id=req.client_id,
            redirect_uri=req.redirect_uri,
            email=values["email"],
            name=values["name"],
            email_verified=values["email_verified"],
            email_public=values["email_public"] and provider == GITHUB,
            scopes=[scope for scope in req.scopes if scope in values["scopes"]],
            include_granted_scopes=req.include_granted_scopes,
            offline=req.offline,
            force_consent="consent" in req.prompt,
            code_challenge=req.code_challenge,
            code_challenge_method=req.code_challenge_method,
            nonce=req.nonce,
        )
    )
    params: dict[str, str | None] = {"code": authorization.code, "state": req.state}
    if provider == GOOGLE:
        params.update(scope=" ".join(authorization.scopes), authuser="0", prompt="consent")
    return HttpResponseRedirect(_with_params(req.redirect_uri, params))


def google_authorize(request: HttpRequest) -> HttpResponse:
    """Google's ``/o/oauth2/v2/auth``: the consent form, then a redirect with ``code`` or ``error``."""
    return _authorize(request, GOOGLE)


def github_authorize(request: HttpRequest) -> HttpResponse:
    """GitHub's ``/login/oauth/authorize``."""
    return _authorize(request, GITHUB)


# --- Google ---------------------------------------------------------------------------------------


def _google_error(error: str, description: str, status: int = 400) -> JsonResponse:
    return _json({"error": error, "error_description": description}, status=status)


def _scoped(scopes: list[str], name: str) -> bool:
    return name in scopes or oauth.GOOGLE_SCOPE_ALIASES[name] in scopes


def _google_claims(request: HttpRequest, grant: Grant, scopes: list[str]) -> dict[str, Any]:
    """Userinfo claims as Google answers them: profile fields need ``profile``, email needs ``email``."""
    claims: dict[str, Any] = {"sub": grant.subject}
    if _scoped(scopes, "profile"):
        name = _display_name(grant)
        given, _, family = name.partition(" ")
        claims["name"] = name
        claims["given_name"] = given
        if family:
            claims["family_name"] = family
        claims["picture"] = _avatar_url(request, grant)
    if _scoped(scopes, "email"):
        claims["email"] = grant.email
        claims["email_verified"] = grant.email_verified
    return claims


def _google_id_token(request: HttpRequest, issued: oauth.IssuedTokens, client_id: str) -> str:
    """A JWT shaped like Google's ID token, signed HS256 with the client secret (RFC 7518 3.2)."""
    now = int(time.time())
    at_hash = _b64url(hashlib.sha256(issued.access_token.encode()).digest()[:16])
    claims = {
        "iss": request.build_absolute_uri(reverse("sandbox:index")) + "google",
        "azp": client_id,
        "aud": client_id,
        **_google_claims(request, issued.grant, issued.scopes),
        "at_hash": at_hash,
        "iat": now,
        "exp": now + issued.expires_in,
    }
    if issued.nonce:
        claims["nonce"] = issued.nonce
    header = {"alg": "HS256", "kid": "sandbox", "typ": "JWT"}
    signing_input = ".".join(
        _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    _client, secret = oauth.client_credentials(GOOGLE)
    signature = hmac.new(secret.encode(), signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(signature)}"


@csrf_exempt
@require_POST
def google_token(request: HttpRequest) -> HttpResponse:
    """Google's token endpoint: ``authorization_code`` and (non-rotating) ``refresh_token`` grants."""
    data = request.POST
    grant_type = data.get("grant_type", "")
    if grant_type == "refresh_token":
        state.record_refresh(GOOGLE, successful=False)
    if (failure := _failure_response(GOOGLE)) is not None:
        return failure
    client_id, client_secret = _client_credentials(request, data)
    if not oauth.known_client(GOOGLE, client_id):
        return _google_error("invalid_client", "The OAuth client was not found.", 401)
    if not oauth.client_authenticates(GOOGLE, client_id, client_secret):
        return _google_error("invalid_client", "Unauthorized", 401)
    try:
        if grant_type == "authorization_code":
            if not data.get("code"):
                return _google_error("invalid_request", "Missing required parameter: code")
            issued = oauth.exchange_code(
                GOOGLE,
                client_id=client_id,
                code=data["code"],
                redirect_uri=data.get("redirect_uri"),
                code_verifier=data.get("code_verifier"),
            )
        elif grant_type == "refresh_token":
            if state.get_failure_mode(GOOGLE) == "invalid_grant":
                raise oauth.GrantError("bad_refresh")
            if not data.get("refresh_token"):
                return _google_error("invalid_request", "Missing required parameter: refresh_token")
            # Google narrows a refreshed token to a ``scope`` within the grant (RFC 6749 6).
            issued = oauth.refresh(
                GOOGLE, client_id=client_id, refresh_token=data["refresh_token"], scope=data.get("scope")
            )
            state.record_refresh(GOOGLE, successful=True)
        else:
            return _google_error("unsupported_grant_type", f"Invalid grant_type: {grant_type}")
    except oauth.GrantError as refused:
        return _google_error(*_GOOGLE_REASONS[refused.reason])
    body: dict[str, Any] = {"access_token": issued.access_token, "expires_in": issued.expires_in}
    if issued.refresh_token:
        body["refresh_token"] = issued.refresh_token
    body["scope"] = " ".join(issued.scopes)
    body["token_type"] = "Bearer"
    if "openid" in issued.scopes:
        body["id_token"] = _google_id_token(request, issued, client_id)
    return _json(body)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def google_userinfo(request: HttpRequest) -> HttpResponse:
    """Google's ``/oauth2/v3/userinfo`` for a bearer access token."""
    token = _bearer(request, ("bearer",)) or request.GET.get("access_token")
    row = oauth.active_access_token(GOOGLE, token)
    if row is None:
        response = _google_error("invalid_token", "Invalid Credentials", 401)
        response["WWW-Authenticate"] = 'Bearer realm="sandbox-google", error="invalid_token"'
        return response
    return _json(_google_claims(request, row.grant, row.scopes.split()))


@csrf_exempt
@require_http_methods(["GET", "POST"])
def google_revoke(request: HttpRequest) -> HttpResponse:
    """Google's ``/revoke``: an access or refresh token revokes the whole grant."""
    token = request.POST.get("token") or request.GET.get("token")
    if not token:
        return _google_error("invalid_request", "Missing required parameter: token")
    row = oauth.active_access_token(GOOGLE, token) or oauth.active_refresh_token(GOOGLE, token)
    if row is None:
        return _google_error("invalid_token", "Token expired or revoked")
    oauth.revoke_grant(row.grant)
    return _json({})


# --- GitHub ---------------------------------------------------------------------------------------


def _github_params(request: HttpRequest) -> dict[str, str]:
    """GitHub reads token-request parameters from the query, a form body or a JSON body."""
    params: dict[str, str] = {key: value for key, value in request.GET.items()}
    if request.content_type == "application/json":
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            body = {}
        if isinstance(body, dict):
            params.update({key: str(value) for key, value in body.items() if value is not None})
    else:
        params.update({key: value for key, value in request.POST.items()})
    return params


def _github_answer(request: HttpRequest, body: dict[str, Any]) -> HttpResponse:
    """JSON when asked for with ``Accept``, else form-encoded, as github.com answers; always 200."""
    if "application/json" in request.headers.get("Accept", ""):
        return _json(body)
    response = HttpResponse(urlencode(body), content_type="application/x-www-form-urlencoded; charset=utf-8")
    response["Cache-Control"] = "no-store"
    return response


def _github_error(request: HttpRequest, error: str) -> HttpResponse:
    description, anchor = _GITHUB_ERRORS[error]
    return _github_answer(
        request, {"error": error, "error_description": description, "error_uri": f"{_GITHUB_DOCS}{anchor}"}
    )


def _github_api_error(message: str, status: int) -> JsonResponse:
    return _json({"message": message, "documentation_url": _GITHUB_API_DOCS, "status": str(status)}, status)


@csrf_exempt
@require_POST
def github_token(request: HttpRequest) -> HttpResponse:
    """GitHub's ``/login/oauth/access_token`` for GitHub App user tokens (refresh tokens rotate)."""
    data = _github_params(request)
    grant_type = data.get("grant_type") or ("authorization_code" if data.get("code") else "")
    if grant_type == "refresh_token":
        state.record_refresh(GITHUB, successful=False)
    if (failure := _failure_response(GITHUB)) is not None:
        return failure
    client_id, client_secret = _client_credentials(request, data)
    if not oauth.client_authenticates(GITHUB, client_id, client_secret):
        return _github_error(request, "incorrect_client_credentials")
    try:
        if grant_type == "authorization_code":
            issued = oauth.exchange_code(
                GITHUB,
                client_id=client_id,
                code=data.get("code", ""),
                redirect_uri=data.get("redirect_uri") or None,
                code_verifier=data.get("code_verifier"),
            )
        elif grant_type == "refresh_token":
            if state.get_failure_mode(GITHUB) == "invalid_grant":
                raise oauth.GrantError("bad_refresh")
            issued = oauth.refresh(GITHUB, client_id=client_id, refresh_token=data.get("refresh_token", ""))
            state.record_refresh(GITHUB, successful=True)
        else:
            return _github_error(request, "unsupported_grant_type")
    except oauth.GrantError as refused:
        return _github_error(request, _GITHUB_REASONS.get(refused.reason, "bad_verification_code"))
    return _github_answer(
        request,
        {
            "access_token": issued.access_token,
            "expires_in": issued.expires_in,
            "refresh_token": issued.refresh_token,
            "refresh_token_expires_in": issued.refresh_expires_in,
            "scope": "",
            "token_type": "bearer",
        },
    )


def _github_grant(request: HttpRequest) -> Grant | HttpResponse:
    if not request.headers.get("Authorization"):
        return _github_api_error("Requires authentication", 401)
    row = oauth.active_access_token(GITHUB, _bearer(request, ("token", "bearer")))
    if row is None:
        return _github_api_error("Bad credentials", 401)
    return row.grant


@csrf_exempt
@require_GET
def github_user(request: HttpRequest) -> HttpResponse:
    """GitHub's ``GET /user``: numeric ``id``; ``email`` is null unless the person made it public."""
    grant = _github_grant(request)
    if isinstance(grant, HttpResponse):
        return grant
    user_id = int(grant.subject)
    login = oauth.github_login(grant.email)
    return _json(
        {
            "login": login,
            "id": user_id,
            "node_id": base64.b64encode(f"04:User{user_id}".encode()).decode("ascii"),
            "avatar_url": _avatar_url(request, grant),
            "url": request.build_absolute_uri(reverse("sandbox:github_user")),
            "html_url": request.build_absolute_uri(reverse("sandbox:index")) + f"#github-{login}",
            "type": "User",
            "site_admin": False,
            "name": grant.name or None,
            "email": grant.email if grant.email_public else None,
        }
    )


@csrf_exempt
@require_GET
def github_user_emails(request: HttpRequest) -> HttpResponse:
    """GitHub's ``GET /user/emails``: the only place that says whether GitHub verified an address."""
    grant = _github_grant(request)
    if isinstance(grant, HttpResponse):
        return grant
    visibility = "public" if grant.email_public else "private"
    return _json(
        [{"email": grant.email, "primary": True, "verified": grant.email_verified, "visibility": visibility}]
    )


@csrf_exempt
@require_http_methods(["DELETE"])
def github_delete_grant(request: HttpRequest, client_id: str) -> HttpResponse:
    """GitHub's ``DELETE /applications/{client_id}/grant``: revokes the whole authorization.

    An expired access token still identifies its grant, so a site can revoke after expiry.
    """
    credentials = _basic_auth(request)
    if (
        credentials is None
        or credentials[0] != client_id
        or not oauth.client_authenticates(GITHUB, *credentials)
    ):
        return _github_api_error("Bad credentials", 401)
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return _github_api_error("Problems parsing JSON", 400)
    token = body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        return _github_api_error('Invalid request.\n\n"access_token" wasn\'t supplied.', 422)
    row = oauth.active_access_token(GITHUB, token, allow_expired=True)
    if row is None or row.grant.client_id != client_id:
        return _github_api_error("Not Found", 404)
    oauth.revoke_grant(row.grant)
    return HttpResponse(status=204)


# --- Avatars and the index page ---------------------------------------------------------------------


@require_GET
def avatar(request: HttpRequest, provider: str, subject: str) -> HttpResponse:
    """A generated initials avatar, so profile pictures render with no network."""
    grant = Grant.objects.filter(provider=provider, subject=subject).order_by("-pk").first()
    name = _display_name(grant) if grant else "?"
    initials = "".join(word[0] for word in name.split()[:2]).upper() or "?"
    hue = int(hashlib.sha256(subject.encode()).hexdigest()[:4], 16) % 360
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="96" height="96" viewBox="0 0 96 96">'
        f'<rect width="96" height="96" fill="hsl({hue},55%,40%)"/>'
        '<text x="48" y="61" font-family="sans-serif" font-size="40" fill="#fff" text-anchor="middle">'
        f"{escape(initials)}</text></svg>"
    )
    response = HttpResponse(svg, content_type="image/svg+xml")
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    response["Cache-Control"] = "max-age=300"
    return response


@never_cache
@require_http_methods(["GET", "POST"])
def index(request: HttpRequest) -> HttpResponse:
    """The sandbox's own page: what stands in for what, and switches for simulated failures."""
    if request.method == "POST":
        if request.POST.get("action") == "reset":
            state.reset()
        else:
            modes = {provider: request.POST.get(f"{provider}_mode") for provider in oauth.PROVIDERS}
            if any(mode is not None and mode not in state.FAILURE_MODES for mode in modes.values()):
                return HttpResponse("Unknown failure mode.", status=400, content_type="text/plain")
            for provider, mode in modes.items():
                if mode is not None:
                    state.set_failure_mode(provider, mode)
        return HttpResponseRedirect(reverse("sandbox:index") + "?saved=1")
    base = request.build_absolute_uri(reverse("sandbox:index"))
    providers = []
    for provider, paths in (
        (GOOGLE, ("google/authorize", "google/token", "google/userinfo", "google/revoke")),
        (
            GITHUB,
            (
                "github/login/oauth/authorize",
                "github/login/oauth/access_token",
                "github/api/user",
                "github/api/user/emails",
                "github/api/applications/<client_id>/grant",
            ),
        ),
    ):
        providers.append(
            {
                "key": provider,
                "title": TITLES[provider],
                "client_id": oauth.client_credentials(provider)[0],
                "mode": state.get_failure_mode(provider),
                "refresh_requests": state.refresh_count(provider),
                "refresh_successes": state.refresh_count(provider, successful=True),
                "endpoints": [base + path for path in paths],
            }
        )
    context = {
        "providers": providers,
        "modes": FAILURE_MODE_CHOICES,
        "grants": Grant.objects.order_by("-pk")[:20],
        "token_ttl": oauth.token_ttl(),
        "saved": request.GET.get("saved") == "1",
    }
    return render(request, "sandbox/index.html", context)
