"""Issue 15, items 1 and 2, staff side: the command, the admin, the development MCP server, key rotation."""

from __future__ import annotations

import io
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.management import call_command
from django.core.management.base import CommandError
from oauth2_provider.models import AccessToken, Application, RefreshToken

from authserver.applications import DEV_MCP_RESOURCE, ensure_dev_mcp_server
from authserver.models import ApplicationPolicy

from .authserver_support import REFRESH_TOKEN_TYPE, basic, exchange, get_code, tokens, web_app
from .flows import sign_in

pytestmark = pytest.mark.django_db


def _run(*args: str) -> str:
    out = io.StringIO()
    call_command("authserver_application", *args, stdout=out)
    return out.getvalue()


def test_command_adds_lists_and_removes_applications_showing_the_secret_once():
    added = json.loads(
        _run(
            "add",
            "--name",
            "Report bot",
            "--redirect-uri",
            "https://bot.example.com/cb",
            "--connections",
            "github",
            "--scopes",
            "github=read:user",
            "--json",
        )
    )
    secret = added["client_secret"]
    assert secret and added["client_id"]
    app = Application.objects.get(client_id=added["client_id"])
    assert app.client_secret != secret  # only a hash is kept
    assert ApplicationPolicy.objects.get(application=app).provider_scopes == {"github": ["read:user"]}
    listing = _run("list")
    assert "Report bot" in listing and "staff-registered" in listing and secret not in listing
    server = _run(
        "add", "--name", "MCP", "--resource", "https://mcp.example.org/mcp", "--connections", "github"
    )
    assert "client_secret:" in server and "resource https://mcp.example.org/mcp" in _run("list")
    assert "Removed 'Report bot'" in _run("remove", added["client_id"])
    assert not Application.objects.filter(client_id=added["client_id"]).exists()
    with pytest.raises(CommandError, match="Unknown connections"):
        _run("add", "--name", "X", "--redirect-uri", "https://x.example.com/cb", "--connections", "myspace")
    with pytest.raises(CommandError):
        _run("add", "--name", "X", "--redirect-uri", "javascript:alert(1)")


def test_admin_marks_self_registered_applications_and_shows_policies(client, staff):
    web_app(name="Staff App", connections=["github"])
    client.post(
        "/oauth/register/",
        json.dumps({"client_name": "Claimed Name", "redirect_uris": ["https://c.example.org/cb"]}),
        content_type="application/json",
    )
    listing = client.get("/admin/oauth2_provider/application/")
    assert listing.status_code == 200
    text = listing.content.decode()
    assert "Claimed Name (self-registered)" in text and "itself (not checked by staff)" in text
    app = Application.objects.get(name="Staff App")
    change = client.get(f"/admin/oauth2_provider/application/{app.pk}/change/")
    assert change.status_code == 200 and b"Connections it may get tokens for" in change.content


def test_development_setup_registers_the_example_mcp_server(settings, client):
    settings.DEBUG = True
    settings.MCP_CLIENT_ID = "dev-mcp-0123456789abcdef"
    settings.MCP_CLIENT_SECRET = "dev-secret-for-tests"
    app = ensure_dev_mcp_server()
    assert app is not None and ensure_dev_mcp_server().pk == app.pk  # once
    assert app.policy.resource == DEV_MCP_RESOURCE and set(app.policy.connections) == {
        "github",
        "google-oauth2",
    }
    assert app.name == "Example MCP server"
    seen = client.post("/oauth/introspect/", {"token": "unknown"}, **basic(app, settings.MCP_CLIENT_SECRET))
    assert seen.status_code == 200 and seen.json() == {"active": False}
    settings.DEBUG = False
    Application.objects.all().delete()
    assert ensure_dev_mcp_server() is None  # never in production


def test_jwks_publishes_the_old_key_next_to_the_new_one(client, settings):
    old = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "OIDC_RSA_PRIVATE_KEYS_INACTIVE": [old.decode()]}
    keys = client.get("/oauth/jwks/").json()["keys"]
    assert len(keys) == 2 and len({key["kid"] for key in keys}) == 2
    assert all("d" not in key for key in keys)  # public halves only


def test_a_refresh_token_can_be_exchanged_at_the_agent_api(client):
    sign_in(client, "github")
    app, secret = web_app()
    code, verifier, _ = get_code(client, app)
    issued = tokens(client, app, secret, code, verifier)
    answer = exchange(
        client,
        app,
        secret,
        issued["refresh_token"],
        path="/api/v1/token",
        subject_token_type=REFRESH_TOKEN_TYPE,
    )
    assert answer.status_code == 200, answer.content
    assert answer.json()["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert (
        answer.headers["Cache-Control"].startswith("max-age=0")
        or "no-store" in answer.headers["Cache-Control"]
    )
    # Only checksums of the site's tokens are stored, never the tokens.
    stored = list(AccessToken.objects.values_list("token", flat=True)) + list(
        RefreshToken.objects.values_list("token", flat=True)
    )
    assert stored and set(stored) == {""}
    unknown = exchange(client, app, secret, "not-a-token", path="/api/v1/token")
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_grant"


def test_the_token_endpoint_refuses_other_grants(client):
    app, secret = web_app()
    for grant in ("client_credentials", "password", "urn:ietf:params:oauth:grant-type:device_code"):
        refused = client.post("/oauth/token/", {"grant_type": grant}, **basic(app, secret))
        assert refused.status_code == 400 and refused.json()["error"] == "unsupported_grant_type"


def test_the_admin_refuses_a_plain_http_redirect_uri_off_loopback(client, staff):
    app, _ = web_app(name="Staff App", connections=["github"])
    change = client.get(f"/admin/oauth2_provider/application/{app.pk}/change/")
    form = change.context["adminform"].form
    data = {name: form.initial.get(name, "") for name in form.fields}
    data.update(
        {
            "redirect_uris": "http://evil.example/cb",
            "user": "",
            "policy-TOTAL_FORMS": "0",
            "policy-INITIAL_FORMS": "0",
        }
    )
    data = {key: ("" if value is None else value) for key, value in data.items()}
    response = client.post(f"/admin/oauth2_provider/application/{app.pk}/change/", data)
    assert response.status_code == 200
    assert "must be https, or http on a loopback address" in response.content.decode()
    app.refresh_from_db()
    assert "evil.example" not in app.redirect_uris
