"""Registering applications as staff: confidential web apps, public clients and resource servers.

One service for the ``authserver_application`` command, the development setup and tests. A secret
is returned once, to be shown once; only its hash is stored (the toolkit hashes it on save).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import Application
from oauth2_provider.settings import oauth2_settings

from accounts.models import User
from accounts.providers import holds_tokens

from .endpoints import is_acceptable_redirect
from .models import ApplicationPolicy

logger = logging.getLogger(__name__)
DEV_MCP_NAME = "Example MCP server"
DEV_MCP_RESOURCE = "http://127.0.0.1:8765/mcp"


class ApplicationError(Exception):
    """What is wrong with an application's description, in words for the person who gave it."""


@dataclass(frozen=True)
class Registered:
    application: Application
    #: The plaintext secret, only right after it was made (None for public clients).
    secret: str | None


def register(
    *,
    name: str,
    redirect_uris: list[str],
    resource: str = "",
    connections: list[str] = (),
    provider_scopes: dict[str, list[str]] | None = None,
    public: bool = False,
    owner: User | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
    logo_url: str = "",
) -> Registered:
    unknown = [name_ for name_ in connections if not holds_tokens(name_)]
    if unknown:
        raise ApplicationError(f"Unknown connections: {', '.join(unknown)}.")
    plain = [uri for uri in redirect_uris if not is_acceptable_redirect(uri)]
    if plain:
        raise ApplicationError(f"Redirect URIs must be https, or http on loopback: {plain[0][:80]!r}.")
    if not redirect_uris and not resource:
        raise ApplicationError("Give at least one --redirect-uri (or a --resource for a resource server).")
    secret = None if public else (client_secret or generate_client_secret())
    application = Application(
        name=name,
        user=owner,
        redirect_uris=" ".join(redirect_uris),
        client_type=Application.CLIENT_PUBLIC if public else Application.CLIENT_CONFIDENTIAL,
        # A resource server without redirect URIs never takes part in an authorization; the token
        # endpoint refuses the client-credentials grant (endpoints.SiteTokenView), so it gets none.
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE
        if redirect_uris
        else Application.GRANT_CLIENT_CREDENTIALS,
        # ID tokens are signed with the site's key when one is configured (validator.SiteValidator).
        algorithm=Application.RS256_ALGORITHM
        if oauth2_settings.OIDC_RSA_PRIVATE_KEY
        else Application.NO_ALGORITHM,
        client_secret=secret or "",
    )
    if client_id:
        application.client_id = client_id
    try:
        application.full_clean(exclude=["client_secret"])
    except ValidationError as error:
        raise ApplicationError("; ".join(error.messages)) from None
    with transaction.atomic():
        application.save()
        ApplicationPolicy.objects.create(
            application=application,
            resource=resource.rstrip("/") if resource else "",
            connections=list(connections),
            provider_scopes=provider_scopes or {},
            logo_url=logo_url,
        )
    return Registered(application=application, secret=secret)


def remove(*, client_id: str) -> Application:
    found = Application.objects.filter(client_id=client_id).first()
    if found is None:
        raise ApplicationError(f"No application with client_id {client_id[:60]!r}.")
    found.delete()
    return found


def ensure_dev_mcp_server() -> Application | None:
    """Development: the example MCP server's resource-server application, with the fixed
    credentials ``dev_setup`` wrote to .env (MCP_CLIENT_ID / MCP_CLIENT_SECRET)."""
    if not (
        settings.DEBUG
        and settings.SANDBOX_PROVIDERS
        and settings.MCP_CLIENT_ID
        and settings.MCP_CLIENT_SECRET
    ):
        return None
    found = Application.objects.filter(client_id=settings.MCP_CLIENT_ID).first()
    if found is not None:
        return found
    connections = [name for name in ("github", "google-oauth2") if holds_tokens(name)]
    try:
        return register(
            name=DEV_MCP_NAME,
            redirect_uris=[],
            resource=DEV_MCP_RESOURCE,
            connections=connections,
            client_id=settings.MCP_CLIENT_ID,
            client_secret=settings.MCP_CLIENT_SECRET,
        ).application
    except ApplicationError as error:  # `migrate` goes on; the example server says it is refused
        logger.warning("The example MCP server was not registered: %s", error)
        return None
