"""The authorization server's settings (``authserver/`` on django-oauth-toolkit), from the environment.

Apart from ``settings.py`` so that each settings module holds one concern; ``settings.py`` merges these
with ``globals().update(authserver_settings(env, site_url=SITE_URL))``. Every name a deployer sets is
in README.md's configuration table.
"""

from __future__ import annotations

from pathlib import Path

import environ


def _pem(value: str) -> str:
    return value.replace("\\n", "\n")


def authserver_settings(env: environ.Env, *, site_url: str) -> dict[str, object]:
    """The settings names and values of the authorization server; the issuer is ``site_url``."""
    # ID tokens are signed (RS256) with a key from the environment: a PEM (newlines may be written
    # \n) or a file; older keys stay published in JWKS while tokens they signed live (rotation).
    private_key = _pem(env.str("OIDC_RSA_PRIVATE_KEY", default=""))
    if not private_key and env.str("OIDC_RSA_PRIVATE_KEY_FILE", default=""):
        private_key = Path(env.str("OIDC_RSA_PRIVATE_KEY_FILE")).read_text()
    old_keys = [Path(path).read_text() for path in env.list("OIDC_RSA_OLD_KEY_FILES", default=[]) if path]
    old_keys += [_pem(pem) for pem in env.list("OIDC_RSA_OLD_KEYS", default=[]) if pem]
    # Self-registration of OAuth clients (RFC 7591), e.g. MCP clients; rate-limited per address.
    dynamic_registration = env.bool("AUTHSERVER_DYNAMIC_REGISTRATION", default=True)
    return {
        "OIDC_RSA_PRIVATE_KEY": private_key,
        "OIDC_RSA_OLD_KEYS": old_keys,
        "AUTHSERVER_DYNAMIC_REGISTRATION": dynamic_registration,
        "AUTHSERVER_REGISTRATION_LIMIT": (env.int("AUTHSERVER_REGISTRATIONS_PER_HOUR", default=20), 3600),
        # /api/v1/token hands an RFC 8693 exchange of a site-issued token to these (the vault never
        # imports authserver): each takes the request and answers (body, status), or None.
        "VAULT_SUBJECT_TOKEN_EXCHANGERS": ["authserver.exchange_api.exchange_site_token"],
        # The vault's connect page names an application asker through this (client_id -> name).
        "VAULT_APPLICATION_NAMER": "authserver.clients.application_title",
        # Development only (dev_setup writes them): the example MCP server's credentials, ensured as
        # a resource-server application after `migrate` when DEBUG and the sandbox are on.
        "MCP_CLIENT_ID": env.str("MCP_CLIENT_ID", default=""),
        "MCP_CLIENT_SECRET": env.str("MCP_CLIENT_SECRET", default=""),
        # `http` redirect URIs stay allowed for loopback only (RFC 8252: native and MCP clients listen
        # on http://127.0.0.1:<port>); every way of registering refuses any other http one.
        "SILENCED_SYSTEM_CHECKS": ["oauth2_provider.W008"],
        # The toolkit's own models, named so migrations that point at them resolve (not swapped).
        "OAUTH2_PROVIDER_APPLICATION_MODEL": "oauth2_provider.Application",
        "OAUTH2_PROVIDER": _toolkit(
            env,
            site_url=site_url,
            private_key=private_key,
            old_keys=old_keys,
            dynamic_registration=dynamic_registration,
        ),
    }


def _toolkit(
    env: environ.Env, *, site_url: str, private_key: str, old_keys: list[str], dynamic_registration: bool
) -> dict[str, object]:
    """django-oauth-toolkit's own settings: OAuth 2.1 only (code + PKCE S256), every RFC 9700 check on."""
    return {
        "OIDC_ENABLED": True,
        "OIDC_ISS_ENDPOINT": site_url,
        "OIDC_RSA_PRIVATE_KEY": private_key,
        "OIDC_RSA_PRIVATE_KEYS_INACTIVE": old_keys,
        "OIDC_RESPONSE_TYPES_SUPPORTED": ["code"],
        "OAUTH2_RESPONSE_TYPES_SUPPORTED": ["code"],
        "OAUTH2_GRANT_TYPES_SUPPORTED": [
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ],
        "OAUTH2_VALIDATOR_CLASS": "authserver.validator.SiteValidator",
        "SCOPES_BACKEND_CLASS": "authserver.scopes.SiteScopes",
        "SCOPES": {"openid": "Sign you in", "profile": "Your name", "email": "Your email address"},
        "DEFAULT_SCOPES": ["openid"],
        "PKCE_REQUIRED": True,
        "ACCESS_TOKEN_EXPIRE_SECONDS": env.int("AUTHSERVER_ACCESS_TOKEN_SECONDS", default=3600),
        "ID_TOKEN_EXPIRE_SECONDS": 3600,
        "REFRESH_TOKEN_EXPIRE_SECONDS": env.int("AUTHSERVER_REFRESH_TOKEN_SECONDS", default=30 * 24 * 3600),
        "AUTHORIZATION_CODE_EXPIRE_SECONDS": 60,
        "ROTATE_REFRESH_TOKEN": True,
        "REFRESH_TOKEN_REUSE_PROTECTION": True,
        "REQUEST_APPROVAL_PROMPT": "force",
        "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
        "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
        "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
        "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
        "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
        "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
        "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
        "COMPLIANT_BCP_RFC9700_REDIRECT_URI_MATCHING": True,
        "COMPLIANT_BCP_RFC9700_PKCE_REQUIRED": True,
        "DCR_ENABLED": dynamic_registration,
        "DCR_REGISTRATION_PERMISSION_CLASSES": ("oauth2_provider.dcr.AllowAllDCRPermission",),
        "CIMD_ENABLED": True,
        "CIMD_METADATA_FETCHER": "authserver.cimd.SiteMetadataFetcher",
        "CIMD_FETCH_TIMEOUT_SECONDS": 3,
        "CIMD_MAX_DOCUMENT_SIZE": 64 * 1024,
    }
