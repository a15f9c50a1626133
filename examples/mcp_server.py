#!/usr/bin/env python3
"""An MCP server protected by linking_site, with tools that call GitHub and Google for the person.

    python examples/mcp_server.py            # after `make run`: serves http://127.0.0.1:8765/mcp

It is an OAuth protected resource (RFC 9728) whose authorization server is linking_site: an MCP
client without a token gets 401 with ``WWW-Authenticate: Bearer resource_metadata="..."``, finds
the site from the metadata, registers, and signs the person in there. Each call's token is checked
by introspection at the site. The tools exchange that token (RFC 8693) for a GitHub or Google token
from the site's vault; when the person has not linked the account (or not granted enough), the
tool answers with a URL elicitation carrying the site's connect link, and the same call succeeds
once the person approved there.

Settings (environment, else the project's .env): SITE_URL, MCP_CLIENT_ID and MCP_CLIENT_SECRET
(`make run` writes development ones), MCP_PORT (or --port), MCP_HOST, MCP_RESOURCE_URL (this
server's public /mcp URL behind a proxy), MCP_GITHUB_API_URL, MCP_GOOGLE_USERINFO_URL.
Exit status 1 when the site cannot be reached at start or credentials are missing.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any
from urllib.parse import urlsplit

import anyio
import uvicorn
from mcp import UrlElicitationRequiredError
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.routes import create_protected_resource_routes
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp_support import (
    Config,
    CredentialsRefused,
    PersonMustAct,
    Site,
    SiteUnreachable,
    ToolFailure,
    load_config,
)
from mcp_types import ElicitRequestURLParams
from starlette.applications import Starlette
from starlette.routing import Route

log = logging.getLogger("mcp_server")

#: What this server asks the person to let it get from the vault; offered in its RFC 9728 metadata,
#: so MCP clients ask for exactly these at the site.
SCOPES = ["vault:github", "vault:google-oauth2"]
PROVIDER_TITLES = {"github": "GitHub", "google-oauth2": "Google"}


class IntrospectionVerifier:
    """The SDK's ``TokenVerifier``: a token is good when the site's introspection says so."""

    def __init__(self, site: Site) -> None:
        self.site = site

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            return await self.site.introspect(token)
        except SiteUnreachable:
            log.warning("cannot check a token: linking_site is unreachable")
            return None


def _caller_token() -> str:
    token = get_access_token()
    if token is None:  # the /mcp route requires one: only a misconfigured mount gets here
        raise ToolError("No signed-in person: connect to this server through its OAuth sign-in.")
    return token.token


async def _provider_token(site: Site, connection: str) -> str:
    """The person's provider token from the vault, or the URL elicitation that gets it."""
    try:
        return await site.exchange(_caller_token(), connection=connection)
    except PersonMustAct as needed:
        title = PROVIDER_TITLES.get(connection, connection)
        message = (
            f"To use your {title} account here, open this link, connect {title} on linking_site and "
            f"approve; then ask again. ({needed.message})"
        )
        raise UrlElicitationRequiredError(
            [ElicitRequestURLParams(message=message, url=needed.url, elicitation_id=needed.request_id)],
            message=f"{title} is not connected for this server yet: open the link to connect it.",
        ) from None
    except ToolFailure as failure:
        raise ToolError(str(failure)) from None


def build_server(config: Config, site: Site) -> MCPServer:
    server = MCPServer(
        "linking_site example",
        instructions="Reads the signed-in person's GitHub and Google profiles through linking_site.",
        token_verifier=IntrospectionVerifier(site),
        auth=AuthSettings(
            issuer_url=config.site_url,  # a string keeps the issuer exact: no slash added
            resource_server_url=config.resource_url,
            # The verifier already insists on aud == this resource; the SDK checks it once more.
            validate_token_resource=True,
        ),
    )

    @server.tool()
    async def github_profile() -> dict[str, Any]:
        """The signed-in person's GitHub login and name, read from GitHub's API."""
        token = await _provider_token(site, "github")
        try:
            user = await site.provider_json(f"{config.github_api_url}/user", token, provider="GitHub")
        except ToolFailure as failure:
            raise ToolError(str(failure)) from None
        return {"login": user.get("login"), "name": user.get("name"), "id": user.get("id")}

    @server.tool()
    async def google_profile() -> dict[str, Any]:
        """The signed-in person's Google name and email, read from Google's userinfo endpoint."""
        token = await _provider_token(site, "google-oauth2")
        try:
            claims = await site.provider_json(config.google_userinfo_url, token, provider="Google")
        except ToolFailure as failure:
            raise ToolError(str(failure)) from None
        return {"sub": claims.get("sub"), "name": claims.get("name"), "email": claims.get("email")}

    return server


def _transport_security(config: Config) -> TransportSecuritySettings:
    """DNS-rebinding protection: loopback Host and Origin headers, and this server's public address
    (``MCP_RESOURCE_URL`` behind a proxy), nothing else."""
    public = urlsplit(config.resource_url)
    loopback = ["127.0.0.1", "localhost", "[::1]"]
    return TransportSecuritySettings(
        allowed_hosts=[*(f"{host}:*" for host in loopback), public.netloc],
        allowed_origins=[*(f"http://{host}:*" for host in loopback), f"{public.scheme}://{public.netloc}"],
    )


def build_app(config: Config, *, site: Site | None = None) -> Starlette:
    """The ASGI app: /mcp behind bearer auth, and the RFC 9728 metadata at both well-known paths."""
    site = site or Site(config)
    app = build_server(config, site).streamable_http_app(transport_security=_transport_security(config))
    metadata = create_protected_resource_routes(
        # Strings, not AnyHttpUrl: the model keeps them as given (the issuer has no trailing slash).
        resource_url=config.resource_url,
        authorization_servers=[config.site_url],
        scopes_supported=SCOPES,
        resource_name="linking_site example MCP server",
    )
    endpoint = metadata[0].endpoint
    # Ahead of the SDK's own metadata route, which would not name the scopes; the bare well-known
    # path serves clients that do not append the resource's path (the MCP spec's fallback).
    app.router.routes[:0] = [
        *metadata,
        Route("/.well-known/oauth-protected-resource", endpoint=endpoint, methods=["GET", "OPTIONS"]),
    ]
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--port", type=int, default=None, help="port to serve on (default: $MCP_PORT or 8765)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout)
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # its lines repeat ours, with full URLs
    config = load_config(port=args.port)
    if not config.client_id or not config.client_secret:
        print(
            "No MCP_CLIENT_ID / MCP_CLIENT_SECRET: run `make run` once (it writes development ones to .env) "
            "or register this server with `manage.py authserver_application add --resource "
            f"{config.resource_url} ...`.",
            file=sys.stderr,
        )
        return 1
    site = Site(config)
    try:
        anyio.run(site.start)
    except CredentialsRefused as error:
        print(
            f"linking_site refused MCP_CLIENT_ID / MCP_CLIENT_SECRET ({error}): use a registered resource "
            "server's credentials (`make run` writes development ones to .env).",
            file=sys.stderr,
        )
        return 1
    except SiteUnreachable as error:
        print(
            f"Cannot reach linking_site: {error}. Start it with `make run` or set SITE_URL.", file=sys.stderr
        )
        return 1
    print(f"MCP server for {config.site_url} at {config.resource_url}", flush=True)
    uvicorn.run(build_app(config, site=site), host=config.host, port=config.port, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
