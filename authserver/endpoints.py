"""The toolkit's server endpoints with what the site adds: the token-exchange grant at the token
endpoint, introspection bound to audiences, self-registration with limits, and one discovery document.

- Token endpoint: ``grant_type=urn:ietf:params:oauth:grant-type:token-exchange`` is ours
  (``authserver.exchange``); every other grant is the toolkit's.
- Introspection (RFC 7662): the caller authenticates as a client; a resource server learns about
  tokens whose audience is its own resource (and a client about its own tokens), else ``active: false``.
- Registration (RFC 7591): public clients only, redirect URIs on loopback or HTTPS, so many per
  address per hour (``AUTHSERVER_REGISTRATION_LIMIT``); the toolkit stores them as self-registered.
- Discovery: RFC 8414 and OpenID Connect documents, the same content, issuer ``SITE_URL``.
"""

from __future__ import annotations

import calendar
import hashlib
import ipaddress
import json
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_post_parameters
from oauth2_provider.models import AccessToken, Application
from oauth2_provider.settings import oauth2_settings
from oauth2_provider.views import ConnectDiscoveryInfoView, OAuthServerMetadataView, TokenView
from oauth2_provider.views.dynamic_client_registration import DynamicClientRegistrationView

from activity.recording import client_ip

from . import clients
from .exchange import normalised
from .exchange_api import TOKEN_EXCHANGE, exchange_at_token_endpoint
from .models import ApplicationPolicy


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response


@method_decorator(
    sensitive_post_parameters("subject_token", "client_secret", "refresh_token", "code"), "dispatch"
)
class SiteTokenView(TokenView):
    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.POST.get("grant_type") == TOKEN_EXCHANGE:
            body, status = exchange_at_token_endpoint(request)
            response = JsonResponse(body, status=status)
            if "retry_after" in body:
                response["Retry-After"] = str(body["retry_after"])
            if status == 401:
                response["WWW-Authenticate"] = 'Basic realm="token"'
            return _no_store(response)
        if request.POST.get("grant_type") not in ("authorization_code", "refresh_token"):
            body = {
                "error": "unsupported_grant_type",
                "error_description": "Use authorization_code, refresh_token or token exchange.",
            }
            return _no_store(JsonResponse(body, status=400))
        return super().post(request, *args, **kwargs)


@method_decorator(csrf_exempt, "dispatch")
@method_decorator(never_cache, "dispatch")
class AudienceIntrospectView(View):
    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        try:
            caller = clients.authenticate(request, allow_public=False)
        except clients.ClientAuthFailed:
            response = JsonResponse({"error": "invalid_client"}, status=401)
            response["WWW-Authenticate"] = 'Basic realm="introspect"'
            return response
        return JsonResponse(introspect(caller=caller, token=request.POST.get("token", "")))


def introspect(*, caller: Application, token: str) -> dict[str, object]:
    """RFC 7662's answer for ``caller``: inactive unless the token is live and the caller is its
    audience's resource server or the application it was issued to."""
    checksum = hashlib.sha256(token.encode()).hexdigest()
    row = AccessToken.objects.select_related("application", "user").filter(token_checksum=checksum).first()
    if row is None or row.is_expired() or row.user is None or row.application is None:
        return {"active": False}
    audiences = list(row.resource or [settings.SITE_URL])
    policy = ApplicationPolicy.objects.filter(application=caller).first()
    own_audience = policy is not None and bool(policy.resource) and policy.resource in normalised(audiences)
    if not own_audience and caller.pk != row.application_id:
        return {"active": False}
    return {
        "active": True,
        "scope": row.scope,
        "client_id": row.application.client_id,
        "sub": str(row.user_id),
        "username": row.user.get_username(),
        "exp": int(calendar.timegm(row.expires.utctimetuple())),
        "iat": int(calendar.timegm(row.created.utctimetuple())),
        "aud": audiences[0] if len(audiences) == 1 else audiences,
        "iss": settings.SITE_URL,
        "token_type": "Bearer",
    }


def is_acceptable_redirect(uri: object) -> bool:
    """HTTPS anywhere, or plain HTTP on a loopback address (RFC 8252); nothing else."""
    if not isinstance(uri, str):
        return False
    parts = urlsplit(uri)
    if parts.scheme == "https":
        return bool(parts.hostname)
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def _refusal(description: str, status: int = 400, error: str = "invalid_client_metadata") -> JsonResponse:
    return JsonResponse({"error": error, "error_description": description}, status=status)


def _over_limit(address: str) -> bool:
    count, window = settings.AUTHSERVER_REGISTRATION_LIMIT
    key = f"authserver:registrations:{address}"
    cache.add(key, 0, window)
    try:
        return cache.incr(key) > count
    except ValueError:  # expired between add and incr
        cache.set(key, 1, window)
        return False


class SelfRegistrationView(DynamicClientRegistrationView):
    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if _over_limit(client_ip(request) or "unknown"):
            return _refusal("Too many registrations from this address; try again later.", 429, "rate_limited")
        try:
            data = json.loads(request.body or b"null")
        except (ValueError, UnicodeDecodeError):
            return _refusal("The body must be a JSON object.")
        if not isinstance(data, dict):
            return _refusal("The body must be a JSON object.")
        method = data.setdefault("token_endpoint_auth_method", "none")
        if method != "none":
            return _refusal("Self-registered clients are public: token_endpoint_auth_method must be none.")
        if set(data.get("grant_types") or ["authorization_code"]) - {"authorization_code", "refresh_token"}:
            return _refusal("Only the authorization_code and refresh_token grants can be registered.")
        uris = data.get("redirect_uris")
        if not isinstance(uris, list) or not uris or not all(is_acceptable_redirect(uri) for uri in uris):
            return _refusal(
                "Each redirect URI must be https, or http on a loopback address (127.0.0.1, [::1])."
            )
        request._body = json.dumps(data).encode()
        response = super().post(request, *args, **kwargs)
        if response.status_code == 201 and oauth2_settings.OIDC_RSA_PRIVATE_KEY:
            client_id = json.loads(response.content)["client_id"]
            Application.objects.filter(client_id=client_id).update(algorithm=Application.RS256_ALGORITHM)
        return response


def discovery(request: HttpRequest) -> dict[str, object]:
    """RFC 8414's document and OpenID Connect's, merged: the two endpoints answer the same."""
    oauth = json.loads(OAuthServerMetadataView().get(request).content)
    oidc = json.loads(ConnectDiscoveryInfoView().get(request).content)
    document = {**oidc, **oauth}
    document.update(
        issuer=settings.SITE_URL,
        code_challenge_methods_supported=["S256"],
        token_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post", "none"],
        id_token_signing_alg_values_supported=["RS256"],
        authorization_response_iss_parameter_supported=True,
        client_id_metadata_document_supported=True,
    )
    return document


@never_cache
def discovery_document(request: HttpRequest) -> HttpResponse:
    response = JsonResponse(discovery(request))
    response["Access-Control-Allow-Origin"] = "*"
    return response
