"""The Google stand-in's server endpoints: token, userinfo and revoke, in Google's own shapes.

Called by backends with client credentials or bearer tokens, never with cookies, so they are
CSRF-exempt. The ID token is signed HS256 with the client secret (what a confidential client can
check without fetching keys).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from . import oauth, state
from .answers import (
    avatar_url,
    b64url,
    bearer,
    client_credentials_sent,
    display_name,
    failure_response,
    json_response,
)
from .models import Grant
from .providers import GOOGLE, GOOGLE_SCOPE_ALIASES, client_authenticates, client_credentials, known_client

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


def _google_error(error: str, description: str, status: int = 400) -> JsonResponse:
    return json_response({"error": error, "error_description": description}, status=status)


def _scoped(scopes: list[str], name: str) -> bool:
    return name in scopes or GOOGLE_SCOPE_ALIASES[name] in scopes


def _google_claims(request: HttpRequest, grant: Grant, scopes: list[str]) -> dict[str, Any]:
    """Userinfo claims as Google answers them: profile fields need ``profile``, email needs ``email``."""
    claims: dict[str, Any] = {"sub": grant.subject}
    if _scoped(scopes, "profile"):
        name = display_name(grant)
        given, _, family = name.partition(" ")
        claims["name"] = name
        claims["given_name"] = given
        if family:
            claims["family_name"] = family
        claims["picture"] = avatar_url(request, grant)
    if _scoped(scopes, "email"):
        claims["email"] = grant.email
        claims["email_verified"] = grant.email_verified
    return claims


def _google_id_token(request: HttpRequest, issued: oauth.IssuedTokens, client_id: str) -> str:
    """A JWT shaped like Google's ID token, signed HS256 with the client secret (RFC 7518 3.2)."""
    now = int(time.time())
    at_hash = b64url(hashlib.sha256(issued.access_token.encode()).digest()[:16])
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
        b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    _client, secret = client_credentials(GOOGLE)
    signature = hmac.new(secret.encode(), signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


@csrf_exempt
@require_POST
def google_token(request: HttpRequest) -> HttpResponse:
    """Google's token endpoint: ``authorization_code`` and (non-rotating) ``refresh_token`` grants."""
    data = request.POST
    grant_type = data.get("grant_type", "")
    if grant_type == "refresh_token":
        state.record_refresh(GOOGLE, successful=False)
    mode = state.get_failure_mode(GOOGLE)  # read once per request
    if (failure := failure_response(GOOGLE, mode=mode)) is not None:
        return failure
    client_id, client_secret = client_credentials_sent(request, data)
    if not known_client(GOOGLE, client_id):
        return _google_error("invalid_client", "The OAuth client was not found.", 401)
    if not client_authenticates(GOOGLE, client_id, client_secret):
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
            if mode == "invalid_grant":
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
    return json_response(body)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def google_userinfo(request: HttpRequest) -> HttpResponse:
    """Google's ``/oauth2/v3/userinfo`` for a bearer access token."""
    token = bearer(request, ("bearer",)) or request.GET.get("access_token")
    row = oauth.active_access_token(GOOGLE, token)
    if row is None:
        response = _google_error("invalid_token", "Invalid Credentials", 401)
        response["WWW-Authenticate"] = 'Bearer realm="sandbox-google", error="invalid_token"'
        return response
    return json_response(_google_claims(request, row.grant, row.scopes.split()))


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
    return json_response({})
