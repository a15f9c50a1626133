"""The stand-ins' authorize endpoints: the sign-in and consent page, then a redirect with a code.

Google's ``/o/oauth2/v2/auth`` and GitHub's ``/login/oauth/authorize`` differ only in details
(scope separators, PKCE methods, ``access_type``, ``prompt``), so one view serves both. A request
the stand-in will not act on is shown as a page and never redirected: a redirect_uri is followed
only once it is known to point at this site.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from . import oauth
from .answers import TITLES, with_params
from .providers import GITHUB, GOOGLE, client_credentials, known_client

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
    if not known_client(provider, client_id):
        expected, _secret = client_credentials(provider)
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
            return HttpResponseRedirect(with_params(req.redirect_uri, _deny_params(req, "login_required")))
        values = {"email": req.login_hint, "name": "", "email_verified": True, "email_public": False}
        return _render_authorize(request, req, {**values, "scopes": set(req.scopes)})

    decision = request.POST.get("decision")
    if decision == "deny":
        return HttpResponseRedirect(with_params(req.redirect_uri, _deny_params(req, "access_denied")))
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
    return HttpResponseRedirect(with_params(req.redirect_uri, params))


def google_authorize(request: HttpRequest) -> HttpResponse:
    """Google's ``/o/oauth2/v2/auth``: the consent form, then a redirect with ``code`` or ``error``."""
    return _authorize(request, GOOGLE)


def github_authorize(request: HttpRequest) -> HttpResponse:
    """GitHub's ``/login/oauth/authorize``."""
    return _authorize(request, GITHUB)
