"""The example MCP server on its own: a protected resource (RFC 9728) that checks tokens by
introspection and turns the vault's "connect first" answers into MCP URL elicitations.

linking_site is stubbed at the network edge (an ``httpx2`` transport) with the answers it gives:
its RFC 8414 metadata, RFC 7662 introspection, and token-exchange errors built by the vault's own
code. The MCP server itself runs for real under uvicorn and is called with the official client.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from urllib.parse import parse_qs

import anyio
import httpx2
import pytest
from mcp import Client, UrlElicitationRequiredError
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from vault import errors, token_exchange

from .mcp_harness import SERVER_SCRIPT, free_port, free_socket, mcp_server, mcp_support, served

SITE = "http://site.example"
CONNECT_URL = f"{SITE}/connect/cr_0123456789abcdef/"


def _actionable(error: errors.TokenVaultError, connection: str) -> errors.TokenVaultError:
    """The details the site adds for a caller it made a connect request for (vault.connect)."""
    error.details = {
        "authorize_url": CONNECT_URL,
        "connect_request": "cr_0123456789abcdef",
        "required_scopes": [],
        "connection": connection,
    }
    return error


class FakeSite:
    """linking_site's endpoints as the MCP server reaches them, answering with the site's shapes."""

    def __init__(self, resource: str) -> None:
        self.resource = resource
        # RFC 6749 section 2.3.1: the server's id and secret, HTTP Basic.
        self.credentials = "Basic " + base64.b64encode(b"mcp-client:mcp-secret").decode()
        self.exchange_answers: dict[str, tuple[int, dict]] = {}
        self.exchanges: list[dict[str, list[str]]] = []
        self.introspections: list[str] = []

    def token_facts(self, token: str) -> dict:
        now = int(time.time())
        facts = {"active": True, "client_id": "mcp-client", "sub": "17", "scope": "vault:github"}
        if token == "good":
            return {**facts, "aud": self.resource, "exp": now + 600}
        if token == "for-another-server":
            return {**facts, "aud": "http://127.0.0.1:1/other", "exp": now + 600}
        if token == "expired":
            return {**facts, "aud": self.resource, "exp": now - 5}
        return {"active": False}

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        if path == "/.well-known/oauth-authorization-server":
            return httpx2.Response(
                200,
                json={
                    "issuer": SITE,
                    "token_endpoint": f"{SITE}/oauth/token/",
                    "introspection_endpoint": f"{SITE}/oauth/introspect/",
                },
            )
        form = parse_qs(request.content.decode())
        if path == "/oauth/introspect/" and request.headers.get("Authorization") != self.credentials:
            return httpx2.Response(401, json={"error": "invalid_client"})
        if path == "/oauth/introspect/":
            self.introspections.append(request.headers.get("Authorization", "").split(" ")[0])
            return httpx2.Response(200, json=self.token_facts(form["token"][0]))
        if path == "/oauth/token/":
            self.exchanges.append(form)
            status, body = self.exchange_answers[form["connection"][0]]
            return httpx2.Response(status, json=body)
        if path == "/user" and request.headers.get("Authorization") == "Bearer gho_from_vault":
            return httpx2.Response(200, json={"login": "alice-gh", "id": 583231, "name": "Alice Example"})
        return httpx2.Response(404, json={"message": "Not Found"})


@pytest.fixture
def mcp():
    """(the /mcp URL, the fake site) with the example served for real on a free port."""
    sock = free_socket()
    port = sock.getsockname()[1]
    config = mcp_support.Config(
        site_url=SITE,
        client_id="mcp-client",
        client_secret="mcp-secret",
        port=port,
        resource_url=f"http://127.0.0.1:{port}/mcp",
        github_api_url="http://api.github.example",
        google_userinfo_url="http://google.example/userinfo",
    )
    site = FakeSite(config.resource_url)
    app = mcp_server.build_app(config, site=mcp_support.Site(config, transport=httpx2.MockTransport(site)))
    with served(app, sock):
        yield config.resource_url, site


def _call(url: str, token: str, tool: str, *, mode: str = "auto"):
    """The tool's result, or the MCP error it answered with (caught inside the client's task group).
    ``mode="legacy"``: the 2025 initialize handshake, as today's Claude and VS Code speak it."""

    async def call():
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"})
        async with http, Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            try:
                return await client.call_tool(tool, {})
            except MCPError as error:
                return error

    return anyio.run(call)


def _post_initialize(url: str, token: str | None, **extra_headers: str) -> httpx2.Response:
    headers = {"Accept": "application/json, text/event-stream", **extra_headers}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"},
        },
    }
    return httpx2.post(url, json=body, headers=headers, timeout=10)


def test_without_a_token_the_server_answers_401_naming_its_metadata(mcp):
    url, _site = mcp
    answer = _post_initialize(url, None)
    assert answer.status_code == 401
    challenge = answer.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    metadata_url = url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")
    assert f'resource_metadata="{metadata_url}"' in challenge

    for where in (metadata_url, url.replace("/mcp", "/.well-known/oauth-protected-resource")):
        document = httpx2.get(where, timeout=10).json()
        assert document["resource"] == url
        assert document["authorization_servers"] == [SITE]
        assert document["scopes_supported"] == ["vault:github", "vault:google-oauth2"]
        assert document["bearer_methods_supported"] == ["header"]


@pytest.mark.parametrize("token", ["for-another-server", "expired", "revoked-or-unknown"])
def test_a_token_not_good_for_this_server_is_refused(mcp, token):
    url, site = mcp
    answer = _post_initialize(url, token)
    assert answer.status_code == 401
    assert "resource_metadata=" in answer.headers["WWW-Authenticate"]
    # The server asked the site, authenticating as itself (HTTP Basic).
    assert site.introspections == ["Basic"]


def test_a_token_for_this_server_is_accepted(mcp):
    url, _site = mcp
    answer = _post_initialize(url, "good")
    assert answer.status_code == 200
    assert "linking_site example" in answer.text


def test_a_page_on_another_host_cannot_reach_it_through_dns_rebinding(mcp):
    url, _site = mcp
    for headers in ({"Host": "attacker.example"}, {"Origin": "http://attacker.example"}):
        refused = _post_initialize(url, "good", **headers)
        assert refused.status_code in (400, 403, 421), headers
        assert "linking_site example" not in refused.text
    assert _post_initialize(url, "good", Origin="http://localhost:6274").status_code == 200


def test_github_profile_exchanges_the_callers_token_and_reads_github(mcp):
    url, site = mcp
    site.exchange_answers["github"] = (
        200,
        {
            "access_token": "gho_from_vault",
            "issued_token_type": token_exchange.ACCESS_TOKEN_TYPE,
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": "read:user",
        },
    )
    result = _call(url, "good", "github_profile")
    assert not result.is_error
    assert result.structured_content == {"login": "alice-gh", "name": "Alice Example", "id": 583231}
    (form,) = site.exchanges
    assert form["grant_type"] == [token_exchange.TOKEN_EXCHANGE]
    assert form["subject_token"] == ["good"]
    assert form["subject_token_type"] == [token_exchange.ACCESS_TOKEN_TYPE]
    assert form["connection"] == ["github"]


@pytest.mark.parametrize(
    ("error", "shape", "mode"),
    [
        (errors.ConnectionRequired(connection="google-oauth2"), "token endpoint (RFC 6749 error)", "auto"),
        (errors.ConnectionRequired(connection="google-oauth2"), "token endpoint (RFC 6749 error)", "legacy"),
        (errors.ConnectionRequired(connection="google-oauth2"), "agent API (site code, 403)", "auto"),
        (errors.InsufficientScope(connection="google-oauth2", missing=["openid"]), "token endpoint", "auto"),
    ],
)
def test_a_missing_connection_comes_back_as_a_url_elicitation(mcp, error, shape, mode):
    url, site = mcp
    error = _actionable(error, "google-oauth2")
    if shape.startswith("agent API"):
        site.exchange_answers["google-oauth2"] = (error.status, error.as_dict())
    else:
        body, status = token_exchange.error_body(error)
        site.exchange_answers["google-oauth2"] = (status, body)

    answer = _call(url, "good", "google_profile", mode=mode)
    assert isinstance(answer, MCPError)
    elicitation = UrlElicitationRequiredError.from_error(answer.error)
    (asked,) = elicitation.elicitations
    assert asked.mode == "url"
    assert asked.url == CONNECT_URL
    assert asked.elicitation_id == "cr_0123456789abcdef"
    assert "connect Google" in asked.message


def test_other_exchange_errors_are_a_clear_tool_error(mcp):
    url, site = mcp
    body, status = token_exchange.error_body(errors.ProviderUnavailable(connection="github"))
    site.exchange_answers["github"] = (status, body)
    result = _call(url, "good", "github_profile")
    assert result.is_error
    (text,) = [part.text for part in result.content]
    assert "linking_site refused the token exchange (HTTP 503)" in text
    assert errors.ProviderUnavailable.default_message in text
    assert "good" not in text.split(":", 1)[1]


def test_a_provider_refusing_the_token_is_a_clear_tool_error(mcp):
    url, site = mcp
    site.exchange_answers["github"] = (200, {"access_token": "gho_revoked_at_github", "token_type": "Bearer"})
    result = _call(url, "good", "github_profile")
    assert result.is_error
    (text,) = [part.text for part in result.content]
    assert text.endswith("GitHub refused the request (HTTP 404).")
    assert "gho_revoked_at_github" not in text


def test_the_server_does_not_start_with_credentials_the_site_refuses():
    config = mcp_support.Config(
        site_url=SITE, client_id="mcp-client", client_secret="stale", resource_url="http://127.0.0.1:8765/mcp"
    )
    site = mcp_support.Site(config, transport=httpx2.MockTransport(FakeSite(config.resource_url)))
    with pytest.raises(mcp_support.CredentialsRefused) as refused:
        anyio.run(site.start)
    assert str(refused.value) == f"HTTP 401 at {SITE}/oauth/introspect/"
    good = mcp_support.Site(
        replace(config, client_secret="mcp-secret"),
        transport=httpx2.MockTransport(FakeSite(config.resource_url)),
    )
    anyio.run(good.start)


def test_the_server_refuses_to_start_without_its_credentials():
    env = {**os.environ, "LINKING_SITE_IGNORE_DOTENV": "1", "SITE_URL": SITE}
    env.pop("MCP_CLIENT_ID", None)
    env.pop("MCP_CLIENT_SECRET", None)
    done = subprocess.run(
        [sys.executable, str(SERVER_SCRIPT)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("No MCP_CLIENT_ID / MCP_CLIENT_SECRET: run `make run` once")


def test_the_server_exits_with_one_line_when_the_site_is_unreachable():
    closed = free_port()
    env = {
        **os.environ,
        "LINKING_SITE_IGNORE_DOTENV": "1",
        "SITE_URL": f"http://127.0.0.1:{closed}",
        "MCP_CLIENT_ID": "mcp-client",
        "MCP_CLIENT_SECRET": "mcp-secret",
    }
    done = subprocess.run(
        [sys.executable, str(SERVER_SCRIPT), "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"Cannot reach linking_site: no answer at http://127.0.0.1:{closed}/")
    assert "make run" in lines[0]


def test_settings_come_from_the_environment_then_the_project_env_file(tmp_path, monkeypatch):
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "DEBUG=on\nSITE_URL=http://127.0.0.1:8001\nMCP_CLIENT_ID=from-file\nMCP_CLIENT_SECRET='s'\n"
    )
    monkeypatch.setattr(mcp_support, "PROJECT_ENV", dotenv)
    config = mcp_support.load_config(environ={"MCP_PORT": "9001"})
    assert (config.site_url, config.client_id, config.port) == ("http://127.0.0.1:8001", "from-file", 9001)
    assert config.resource_url == "http://127.0.0.1:9001/mcp"
    # DEBUG on and no SANDBOX_PROVIDERS: the site runs its sandbox, so the tools call it.
    assert config.github_api_url == "http://127.0.0.1:8001/sandbox/github/api"
    assert config.google_userinfo_url == "http://127.0.0.1:8001/sandbox/google/userinfo"
    assert "'s'" not in repr(config) and "client_secret" not in repr(config)

    production = mcp_support.load_config(
        environ={"SITE_URL": "https://id.example.org/", "DEBUG": "off", "MCP_CLIENT_SECRET": "x"}
    )
    assert production.site_url == "https://id.example.org"
    assert production.github_api_url == "https://api.github.com"
    assert json.dumps(production.google_userinfo_url).startswith('"https://')
