"""Interop with a client nobody here wrote: the official ``mcp`` Python SDK's OAuth client signs a
person in with linking_site for the example MCP server, and the server's tools use the vault.

Everything is real: the site under pytest-django's live server with the sandbox providers, the
example MCP server as its own process (``python examples/mcp_server.py``), the SDK's
``OAuthClientProvider`` doing RFC 9728 and RFC 8414 discovery, dynamic client registration, PKCE
and the RFC 8707 ``resource``, and Chromium for everything a person does: the consent page, and
connecting Google when a tool answers with a URL elicitation.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO
from urllib.parse import urlsplit

import httpx2
import pytest
from django.core.management import call_command
from mcp import UrlElicitationRequiredError
from mcp.shared.exceptions import MCPError
from playwright.sync_api import expect

from sandbox.providers import github_login

from .browser import chromium_page, sandbox_sign_in
from .mcp_harness import SERVER_SCRIPT, ClientThread, call_or_error, free_port

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LOGGED_LINE = re.compile(r"mcp_server (GET|POST) [^/\s]+(/\S*) -> (\d{3})$")


def _register_resource_server(resource: str) -> dict:
    """The MCP server's own credentials, as staff (or `make run`) register it: a resource server."""
    out = StringIO()
    call_command(
        "authserver_application",
        "add",
        "--name",
        "Example MCP server",
        "--resource",
        resource,
        "--connections",
        "github,google-oauth2",
        "--json",
        stdout=out,
    )
    return json.loads(out.getvalue())


@contextmanager
def _mcp_server(site_url: str, port: int, credentials: dict, timeline: list) -> Iterator[list[str]]:
    """``python examples/mcp_server.py`` against the live site; yields its output lines. Its calls
    to the site are logged (method, path, status: never a token) into ``timeline`` as they happen."""
    env = {
        **os.environ,
        "LINKING_SITE_IGNORE_DOTENV": "1",
        "SITE_URL": site_url,
        "SANDBOX_PROVIDERS": "on",
        "MCP_CLIENT_ID": credentials["client_id"],
        "MCP_CLIENT_SECRET": credentials["client_secret"],
    }
    process = subprocess.Popen(
        [sys.executable, str(SERVER_SCRIPT), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    started = threading.Event()

    def read() -> None:
        for line in process.stdout:
            output.append(line)
            if "Uvicorn running on" in line:
                started.set()
            found = LOGGED_LINE.search(line.strip())
            if found:
                timeline.append(("MCP server", found[1], f"{found[2]} -> {found[3]}"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not started.wait(60):
            raise AssertionError(f"the MCP server did not start: {''.join(output)}")
        yield output
    finally:
        process.terminate()
        process.wait(15)
        reader.join(5)


def _record_page(timeline: list, response) -> None:
    """The browser's page loads and form posts (not its images or styles), with their status."""
    request = response.request
    if request.resource_type == "document":
        timeline.append(("browser", request.method, f"{urlsplit(request.url).path} -> {response.status}"))


def _consent(page, url: str, redirect_uri: str) -> str:
    """The person approves on the site's consent page; returns where the browser was sent back
    (the client's loopback redirect URI, answered here as the client's own listener would)."""
    page.route(f"{redirect_uri}**", lambda route: route.fulfill(status=200, body="Back to the MCP client."))
    page.goto(url)
    expect(page.get_by_text("MCP interop test client").first).to_be_visible()
    with page.expect_request(lambda request: request.url.startswith(redirect_uri)) as landed:
        page.get_by_role("button", name=re.compile(r"^(Allow|Approve|Authorize)")).click()
    page.wait_for_url(re.compile(re.escape(redirect_uri)))  # the route above answered the browser
    return landed.value.url


def _remove_access(page, title: str) -> None:
    page.goto("/settings/apps/")
    card = page.locator("article", has=page.get_by_role("heading", name=title))
    expect(card.get_by_text("Registered itself")).to_be_visible()
    card.get_by_role("button", name="Remove access").click()
    expect(page.get_by_text(re.compile(rf"^Removed {re.escape(title)}.*access"))).to_be_visible()


def _initialize(url: str, token: str) -> httpx2.Response:
    """A bare MCP initialize request with the client's token, as any client would send it."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
    return httpx2.post(url, json=body, headers=headers, timeout=30)


def _connect_google(page, url: str) -> None:
    """The person opens the elicitation's link, connects Google and lets the application continue."""
    page.goto(url)
    page.get_by_role("button", name=re.compile(r"^Approve and continue to Google")).click()
    sandbox_sign_in(page, email="alice@example.com", name="Alice")
    page.get_by_role("button", name=re.compile(r"continue$")).click()
    expect(page.get_by_role("heading", name=re.compile(r"^Done"))).to_be_visible()


def test_the_mcp_sdk_client_signs_in_and_the_tools_use_the_vault(live_server, capsys):
    port = free_port()
    mcp_url = f"http://127.0.0.1:{port}/mcp"
    redirect_uri = f"http://127.0.0.1:{free_port()}/callback"
    credentials = _register_resource_server(mcp_url)
    results: dict[str, object] = {}

    async def steps(client, ask) -> None:
        results["github"] = await call_or_error(client, "github_profile")
        results["google, first"] = first = await call_or_error(client, "google_profile")
        if isinstance(first, MCPError):
            await ask("elicit", first)
            results["google, again"] = await call_or_error(client, "google_profile")

    with chromium_page(live_server.url) as page:
        page.goto("/")
        page.get_by_role("button", name="Continue with GitHub").click()
        sandbox_sign_in(page, email="alice@example.com", name="Alice")
        expect(page.get_by_role("heading", name="Connections")).to_be_visible()

        runner = ClientThread(mcp_url, redirect_uri, steps)
        page.on("response", lambda response: _record_page(runner.timeline, response))
        with _mcp_server(live_server.url, port, credentials, runner.timeline) as server_output:
            runner.start()
            while True:
                kind, payload = runner.to_test.get(timeout=180)
                if kind == "authorize":
                    authorization = len(runner.timeline)
                    runner.to_client.put(_consent(page, payload, redirect_uri))
                elif kind == "elicit":
                    (asked,) = UrlElicitationRequiredError.from_error(payload.error).elicitations
                    results["elicitation url"] = asked.url
                    _connect_google(page, asked.url)
                    runner.to_client.put("approved")
                elif kind == "failed":
                    raise payload
                else:
                    break
            # The person ends it on the site: the server refuses the client's token at once.
            token = runner.storage.tokens.access_token
            assert _initialize(mcp_url, token).status_code == 200
            _remove_access(page, "MCP interop test client")
            refused = _initialize(mcp_url, token)
            assert refused.status_code == 401
            assert "resource_metadata=" in refused.headers["WWW-Authenticate"]

    github = results["github"]
    assert not isinstance(github, MCPError), github
    assert not github.is_error, github.content
    assert github.structured_content["login"] == github_login("alice@example.com")
    assert github.structured_content["name"] == "Alice"

    first = results["google, first"]
    assert isinstance(first, MCPError), first
    assert first.code == -32042  # URL elicitation required
    assert results["elicitation url"].startswith(f"{live_server.url}/connect/")

    again = results["google, again"]
    assert not isinstance(again, MCPError), again
    assert not again.is_error, again.content
    assert again.structured_content["email"] == "alice@example.com"
    assert again.structured_content["name"] == "Alice"

    # The server logged its calls, and never a secret or a token.
    logged = "".join(server_output)
    assert "POST localhost/oauth/introspect/ -> 200" in logged
    for secret in (credentials["client_secret"], runner.storage.tokens.access_token):
        assert secret not in logged

    # The one MCP authorization, as it went over the wire (what the closing note quotes).
    sequence = _authorization_sequence(runner.timeline, authorization)
    with capsys.disabled():
        print("\nOne MCP authorization, request by request (method and path, no tokens):")
        for number, (who, method, path) in enumerate(sequence, 1):
            print(f"  {number:2}. {who:10} {method:6} {path}")
    assert sequence[0] == ("MCP client", "POST", "/mcp -> 401")
    assert ("MCP client", "GET", "/.well-known/oauth-protected-resource/mcp -> 200") in sequence
    assert ("MCP client", "GET", "/.well-known/oauth-authorization-server -> 200") in sequence
    assert ("MCP client", "POST", "/oauth/register/ -> 201") in sequence
    assert ("browser", "POST", "/oauth/authorize/ -> 302") in sequence
    assert ("browser", "GET", "/callback -> 200") in sequence
    assert ("MCP client", "POST", "/oauth/token/ -> 200") in sequence
    assert ("MCP server", "POST", "/oauth/introspect/ -> 200") in sequence
    # Two processes log into one list, so only the order within each is certain.
    assert ("MCP server", "POST", "/oauth/token/ -> 200") in sequence
    assert sequence[-1] == ("MCP server", "GET", "/sandbox/github/api/user -> 200")


def _authorization_sequence(timeline: list, authorize_at: int) -> list:
    """From the client's first request to /mcp until the first tool call reached GitHub: discovery,
    registration, the browser's consent, the token request, introspection and the exchange."""
    end = next(
        (
            index
            for index, (who, _method, path) in enumerate(timeline)
            if index > authorize_at and who == "MCP server" and path.startswith("/sandbox/github/api/user")
        ),
        len(timeline),
    )
    start = next(index for index, (who, _method, _path) in enumerate(timeline) if who == "MCP client")
    return timeline[start : end + 1]
