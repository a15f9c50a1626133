"""Who an application is: authenticating a client at our own endpoints, and how it is named.

The toolkit authenticates clients inside oauthlib's grant flows; the token exchange and the
audience-bound introspection run outside them, so they call the toolkit's validator here
(HTTP Basic or ``client_secret_post``, hashed secrets) rather than checking secrets by hand.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.http import HttpRequest
from oauth2_provider.models import Application
from oauth2_provider.views.mixins import OAuthLibMixin
from oauthlib.common import Request as OauthlibRequest

SELF_REGISTERED = (Application.RegistrationSource.DCR, Application.RegistrationSource.CIMD)


class ClientAuthFailed(Exception):
    """No client, an unknown one, or a wrong secret: RFC 6749's ``invalid_client`` (401)."""


def authenticate(request: HttpRequest, *, allow_public: bool) -> Application:
    """The calling application: a confidential one proves its secret; a public one (self-registered
    MCP clients) is named by ``client_id`` only, and only where ``allow_public`` says so."""
    core = OAuthLibMixin.get_oauthlib_core()
    uri, method, body, headers = core._extract_params(request)
    oauth_request = OauthlibRequest(uri, method, body, headers)
    validator = core.server.request_validator
    if validator.authenticate_client(oauth_request):
        return oauth_request.client
    client_id = request.POST.get("client_id", "")
    if allow_public and client_id and "HTTP_AUTHORIZATION" not in request.META:
        client = Application.objects.filter(client_id=client_id).first()
        if client is not None and client.client_type == Application.CLIENT_PUBLIC:
            return client
    raise ClientAuthFailed()


def is_self_registered(application: Application) -> bool:
    return application.registration_source in SELF_REGISTERED


def title(application: Application) -> str:
    """The name a person sees; a self-registered client's own name is marked as its claim."""
    name = application.name or urlsplit(application.client_id).hostname or application.client_id
    return f"{name} (self-registered)" if is_self_registered(application) else name


def application_title(client_id: str) -> str:
    """``VAULT_APPLICATION_NAMER``: the vault's connect pages name an application asker by this."""
    found = Application.objects.filter(client_id=client_id).first()
    return title(found) if found else "an application that no longer exists"


def redirect_host(redirect_uri: str) -> str:
    parts = urlsplit(redirect_uri or "")
    return parts.netloc or parts.scheme
