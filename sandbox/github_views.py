"""The GitHub stand-in's server endpoints: the token endpoint and the REST API calls backends make.

github.com answers token requests with status 200 and an ``error`` field, form-encoded unless JSON
was asked for; the REST API answers errors as ``{"message", "documentation_url"}``. Called with
client credentials or bearer tokens, never with cookies, so they are CSRF-exempt.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import oauth, state
from .answers import avatar_url, basic_auth, bearer, client_credentials_sent, failure_response, json_response
from .models import Grant
from .providers import GITHUB, client_authenticates, github_login

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
_GITHUB_API_DOCS = "https://docs.github.com/rest"


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
        return json_response(body)
    response = HttpResponse(urlencode(body), content_type="application/x-www-form-urlencoded; charset=utf-8")
    response["Cache-Control"] = "no-store"
    return response


def _github_error(request: HttpRequest, error: str) -> HttpResponse:
    description, anchor = _GITHUB_ERRORS[error]
    return _github_answer(
        request, {"error": error, "error_description": description, "error_uri": f"{_GITHUB_DOCS}{anchor}"}
    )


def _github_api_error(message: str, status: int) -> JsonResponse:
    return json_response(
        {"message": message, "documentation_url": _GITHUB_API_DOCS, "status": str(status)}, status
    )


@csrf_exempt
@require_POST
def github_token(request: HttpRequest) -> HttpResponse:
    """GitHub's ``/login/oauth/access_token`` for GitHub App user tokens (refresh tokens rotate)."""
    data = _github_params(request)
    grant_type = data.get("grant_type") or ("authorization_code" if data.get("code") else "")
    if grant_type == "refresh_token":
        state.record_refresh(GITHUB, successful=False)
    mode = state.get_failure_mode(GITHUB)  # read once per request
    if (failure := failure_response(GITHUB, mode=mode)) is not None:
        return failure
    client_id, client_secret = client_credentials_sent(request, data)
    if not client_authenticates(GITHUB, client_id, client_secret):
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
            if mode == "invalid_grant":
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
    row = oauth.active_access_token(GITHUB, bearer(request, ("token", "bearer")))
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
    login = github_login(grant.email)
    return json_response(
        {
            "login": login,
            "id": user_id,
            "node_id": base64.b64encode(f"04:User{user_id}".encode()).decode("ascii"),
            "avatar_url": avatar_url(request, grant),
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
    return json_response(
        [{"email": grant.email, "primary": True, "verified": grant.email_verified, "visibility": visibility}]
    )


@csrf_exempt
@require_http_methods(["DELETE"])
def github_delete_grant(request: HttpRequest, client_id: str) -> HttpResponse:
    """GitHub's ``DELETE /applications/{client_id}/grant``: revokes the whole authorization.

    An expired access token still identifies its grant, so a site can revoke after expiry.
    """
    credentials = basic_auth(request)
    if credentials is None or credentials[0] != client_id or not client_authenticates(GITHUB, *credentials):
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
