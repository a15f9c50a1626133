"""Issue 15, item 2: self-registration (RFC 7591) and client ID metadata documents, with their limits.

CIMD fetches are stopped at the network edge: ``socket.getaddrinfo`` (what a host resolves to) and
urllib3's connection pool (what the host answers), as the toolkit's fetcher uses them.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
import urllib3
from oauth2_provider import cimd
from oauth2_provider.models import Application

from .authserver_support import allow, pkce
from .flows import sign_in

pytestmark = pytest.mark.django_db
CIMD_URL = "https://client.example.com/oauth/client.json"
PUBLIC_IP = "93.184.215.14"


def _register(client, **metadata):
    body = {
        "client_name": "Helpful MCP client",
        "redirect_uris": ["http://127.0.0.1:33418/callback"],
        **metadata,
    }
    return client.post("/oauth/register/", json.dumps(body), content_type="application/json")


def _authorize(client, client_id: str, redirect_uri: str, scope: str = "openid"):
    _verifier, challenge = pkce()
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": "s1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return client.get("/oauth/authorize/?" + urlencode(query))


def test_an_mcp_client_registers_itself_and_is_marked_self_registered(client):
    registered = _register(client)
    assert registered.status_code == 201, registered.content
    body = registered.json()
    assert body["token_endpoint_auth_method"] == "none" and "client_secret" not in body
    app = Application.objects.get(client_id=body["client_id"])
    assert app.client_type == "public" and app.registration_source == "dcr"
    sign_in(client, "github")
    page = _authorize(client, body["client_id"], "http://127.0.0.1:40000/callback")
    assert page.status_code == 200
    assert b"data-self-registered" in page.content and b"Helpful MCP client" in page.content
    answer = allow(client, page)
    assert answer.headers["Location"].startswith("http://127.0.0.1:40000/callback?code=")
    apps = client.get("/settings/apps/").content
    assert b"Helpful MCP client (self-registered)" in apps and b"Registered itself" in apps


@pytest.mark.parametrize(
    "uri",
    [
        "javascript:alert(1)",
        "http://evil.example.com/callback",
        "data:text/html,hi",
        "ftp://x.example.com/cb",
    ],
)
def test_registration_refuses_redirects_that_are_not_https_or_loopback(client, uri):
    refused = _register(client, redirect_uris=[uri])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_client_metadata"
    assert not Application.objects.exists()


def test_registration_refuses_confidential_clients_and_other_grants(client):
    assert _register(client, token_endpoint_auth_method="client_secret_basic").status_code == 400
    assert _register(client, grant_types=["client_credentials"]).status_code == 400
    assert _register(client, redirect_uris=["https://app.example.org/cb"]).status_code == 201


def test_registration_is_rate_limited_per_address(client, settings):
    settings.AUTHSERVER_REGISTRATION_LIMIT = (2, 3600)
    assert _register(client).status_code == 201
    assert _register(client).status_code == 201
    third = _register(client)
    assert third.status_code == 429 and third.json()["error"] == "rate_limited"
    other_address = client.post(
        "/oauth/register/",
        json.dumps({"redirect_uris": ["https://x.example.org/cb"]}),
        content_type="application/json",
        REMOTE_ADDR="10.1.2.3",
    )
    assert other_address.status_code == 201


def test_registration_can_be_turned_off(client, settings):
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "DCR_ENABLED": False}
    assert _register(client).status_code == 404
    assert "registration_endpoint" not in client.get("/.well-known/oauth-authorization-server").json()


class _Answer:
    """What a host answers, as urllib3 gives it to the toolkit's fetcher."""

    def __init__(self, body: bytes, content_type: str = "application/json") -> None:
        self.status = 200
        self.headers = {"Content-Type": content_type, "Cache-Control": "max-age=600"}
        self._body = body

    def read(self, amount: int) -> bytes:
        return self._body[:amount]

    def release_conn(self) -> None:
        pass


@pytest.fixture
def network(monkeypatch):
    """The network edge: every host resolves to a public address; ``answer`` is what it says."""
    state = {"answer": None, "calls": [], "timeouts": []}

    def getaddrinfo(host, port, *args, **kwargs):
        return [(2, 1, 6, "", (state.get("ip", PUBLIC_IP), port))]

    class Pool:
        def __init__(self, host, port, timeout, **kwargs):
            state["timeouts"].append(timeout.total)

        def urlopen(self, method, path, **kwargs):
            state["calls"].append(path)
            answer = state["answer"]
            if isinstance(answer, Exception):
                raise answer
            return answer

        def close(self):
            pass

    monkeypatch.setattr(cimd.socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(cimd.urllib3, "HTTPSConnectionPool", Pool)
    return state


def _document(**extra) -> bytes:
    return json.dumps(
        {
            "client_id": CIMD_URL,
            "client_name": "Doc Client",
            "redirect_uris": ["http://127.0.0.1/cb"],
            **extra,
        }
    ).encode()


def test_a_client_id_metadata_document_registers_the_client_once_and_is_cached(client, network):
    network["answer"] = _Answer(_document())
    sign_in(client, "github")
    page = _authorize(client, CIMD_URL, "http://127.0.0.1:5000/cb")
    assert (
        page.status_code == 200 and b"data-self-registered" in page.content and b"Doc Client" in page.content
    )
    app = Application.objects.get(client_id=CIMD_URL)
    assert app.registration_source == "cimd" and app.client_type == "public"
    _authorize(client, CIMD_URL, "http://127.0.0.1:5000/cb")
    assert network["calls"] == ["/oauth/client.json"]  # fetched once, then cached
    assert all(total is not None and total <= 3 for total in network["timeouts"])


@pytest.mark.parametrize("address", ["127.0.0.1", "169.254.169.254", "10.0.0.7", "::1"])
def test_cimd_refuses_hosts_that_resolve_to_private_addresses(client, network, address):
    network["ip"] = address
    network["answer"] = _Answer(_document())
    sign_in(client, "github")
    page = _authorize(client, CIMD_URL, "http://127.0.0.1:5000/cb")
    assert page.status_code == 400 and network["calls"] == []  # never connected
    assert not Application.objects.filter(client_id=CIMD_URL).exists()


@pytest.mark.parametrize("url", ["https://127.0.0.1/client.json", "https://169.254.169.254/latest/meta-data"])
def test_cimd_refuses_private_address_literals(client, url):
    sign_in(client, "github")
    assert _authorize(client, url, "http://127.0.0.1:5000/cb").status_code == 400
    assert not Application.objects.filter(client_id=url).exists()


def test_cimd_refuses_a_ten_megabyte_document(client, network):
    network["answer"] = _Answer(_document(padding="x" * (10 * 1024 * 1024)))
    sign_in(client, "github")
    assert _authorize(client, CIMD_URL, "http://127.0.0.1:5000/cb").status_code == 400
    assert not Application.objects.filter(client_id=CIMD_URL).exists()


def test_cimd_gives_up_on_a_slow_host_within_its_time_limit(client, network):
    network["answer"] = urllib3.exceptions.ReadTimeoutError(None, "/oauth/client.json", "read timed out")
    sign_in(client, "github")
    assert _authorize(client, CIMD_URL, "http://127.0.0.1:5000/cb").status_code == 400
    assert network["timeouts"] and max(network["timeouts"]) <= 3
    assert not Application.objects.filter(client_id=CIMD_URL).exists()


def test_cimd_refuses_a_document_with_a_non_loopback_http_redirect(client, network):
    network["answer"] = _Answer(_document(redirect_uris=["http://evil.example.com/cb"]))
    sign_in(client, "github")
    assert _authorize(client, CIMD_URL, "http://evil.example.com/cb").status_code == 400
    assert not Application.objects.filter(client_id=CIMD_URL).exists()
