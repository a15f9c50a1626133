"""The scopes the authorization server knows, what each means in plain words, and each client's share.

``openid profile email`` sign a person in; ``vault:<connection>`` (``vault:github``...) lets an
application exchange its token for that connection's provider tokens, limited to the provider
scopes staff allowed it (``ApplicationPolicy.provider_scopes``) where they did. The toolkit asks
this backend (``SCOPES_BACKEND_CLASS``) what exists, what a client may ask for, and the defaults.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qs, urlsplit

from oauth2_provider.scopes import BaseScopes

from accounts.providers import holds_tokens, provider_title, token_providers

from .models import ApplicationPolicy

VAULT_PREFIX = "vault:"
SIGN_IN_SCOPES = {
    "openid": "Sign you in",
    "profile": "See your name",
    "email": "See your email address",
    "offline_access": "Stay connected while you are away",
}


def vault_scope(connection: str) -> str:
    return f"{VAULT_PREFIX}{connection}"


def connection_of(scope: str) -> str | None:
    """The connection a ``vault:<connection>`` scope names, or None for another scope."""
    return scope.removeprefix(VAULT_PREFIX) if scope.startswith(VAULT_PREFIX) else None


def all_scopes() -> dict[str, str]:
    scopes = dict(SIGN_IN_SCOPES)
    for provider in token_providers():
        scopes[vault_scope(provider.name)] = f"Get {provider.title} tokens for you"
    return scopes


def policy_of(application: object) -> ApplicationPolicy | None:
    if application is None or getattr(application, "pk", None) is None:
        return None
    return ApplicationPolicy.objects.filter(application_id=application.pk).first()


def allowed_connections(application: object) -> list[str]:
    """The connections an application may ask for: its policy's list, or every configured one."""
    policy = policy_of(application)
    listed = [name for name in (policy.connections if policy else []) if holds_tokens(name)]
    return listed or [provider.name for provider in token_providers()]


def allowed_provider_scopes(application: object, connection: str) -> list[str]:
    """The provider scopes staff limited the application to for ``connection`` (empty: no limit)."""
    policy = policy_of(application)
    return list((policy.provider_scopes or {}).get(connection, [])) if policy else []


def resource_of(uri: str) -> ApplicationPolicy | None:
    """The resource server that serves the audience ``uri`` (an MCP server), if one is registered."""
    wanted = (uri or "").rstrip("/")
    return ApplicationPolicy.objects.filter(resource=wanted).exclude(resource="").first() if wanted else None


def default_scopes_for(application: object, resources: Iterable[str]) -> list[str]:
    """No ``scope`` asked: sign-in, and for a registered resource server the connections it serves
    (an MCP client knows no scope names; the consent page lists them all before anything is granted)."""
    wanted = ["openid"]
    allowed = allowed_connections(application)
    for uri in resources:
        policy = resource_of(uri)
        for connection in policy.connections if policy else []:
            if connection in allowed and vault_scope(connection) not in wanted:
                wanted.append(vault_scope(connection))
    return wanted


def resources_in(uri: str) -> list[str]:
    """The RFC 8707 ``resource`` values of a request URI's query."""
    return parse_qs(urlsplit(uri or "").query).get("resource", [])


class SiteScopes(BaseScopes):
    def get_all_scopes(self) -> dict[str, str]:
        return all_scopes()

    def get_available_scopes(self, application=None, request=None, *args, **kwargs) -> list[str]:
        if application is None:
            return list(all_scopes())
        return [*SIGN_IN_SCOPES, *(vault_scope(name) for name in allowed_connections(application))]

    def get_default_scopes(self, application=None, request=None, *args, **kwargs) -> list[str]:
        return default_scopes_for(application, resources_in(getattr(request, "uri", "")))


def plain_words(scopes: Iterable[str], provider_scopes: dict[str, list[str]]) -> list[str]:
    """What a person is asked to grant, one line each: "Sign you in", "Get GitHub tokens with ..."."""
    lines = []
    for scope in scopes:
        connection = connection_of(scope)
        if connection is None:
            if scope in SIGN_IN_SCOPES:
                lines.append(SIGN_IN_SCOPES[scope])
            continue
        title = provider_title(connection)
        limited = provider_scopes.get(connection) or []
        if limited:
            lines.append(f"Get {title} tokens for you, with the scopes {', '.join(limited)}")
        else:
            lines.append(f"Get {title} tokens for you, with the access your linked {title} account gives")
    return lines
