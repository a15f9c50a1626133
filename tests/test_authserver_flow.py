"""Issue 15, items 1, 3, 4, 5: discovery, authorize with consent, tokens, exchange, the apps page."""

from __future__ import annotations

import pytest
from django.core import mail

from activity.models import Activity
from authserver.models import Consent

from .authserver_support import (
    MCP_RESOURCE,
    REDIRECT,
    authorize_query,
    basic,
    exchange,
    get_code,
    pkce,
    resource_server,
    tokens,
    web_app,
)
from .flows import sign_in

pytestmark = pytest.mark.django_db


def test_discovery_documents_advertise_every_endpoint_with_the_site_as_issuer(client, settings):
    oauth = client.get("/.well-known/oauth-authorization-server").json()
    oidc = client.get("/.well-known/openid-configuration").json()
    assert oauth["issuer"] == settings.SITE_URL == oidc["issuer"]
    for key in (
        "authorization_endpoint",
        "token_endpoint",
        "introspection_endpoint",
        "revocation_endpoint",
        "registration_endpoint",
        "jwks_uri",
        "userinfo_endpoint",
    ):
        assert oauth[key].startswith(settings.SITE_URL + "/oauth/"), key
        assert oauth[key] == oidc[key]
    assert oauth["code_challenge_methods_supported"] == ["S256"]
    assert oauth["authorization_response_iss_parameter_supported"] is True
    assert {"authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:token-exchange"} <= set(
        oauth["grant_types_supported"]
    )
    assert oauth["client_id_metadata_document_supported"] is True
    assert "client_secret_basic" in oauth["token_endpoint_auth_methods_supported"]
    assert "vault:github" in oauth["scopes_supported"]
    keys = client.get("/oauth/jwks/").json()["keys"]
    assert keys and keys[0]["alg"] == "RS256" and "d" not in keys[0]


def test_authorize_consent_token_exchange_apps_page_and_remove_access(client, settings):
    sign_in(client, "github", email="alice@example.com")
    app, secret = web_app()
    code, verifier, query = get_code(client, app)
    assert query["iss"] == settings.SITE_URL  # RFC 9207
    issued = tokens(client, app, secret, code, verifier)
    assert issued["refresh_token"] and issued["id_token"]

    answer = exchange(client, app, secret, issued["access_token"])
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert body["token_type"] == "Bearer" and body["access_token"] and body["expires_in"] > 0
    # The same at the agent API's endpoint.
    again = exchange(client, app, secret, issued["access_token"], path="/api/v1/token")
    assert again.status_code == 200, again.content
    # The provider token works at the (sandbox) provider.
    profile = client.get("/sandbox/github/api/user", HTTP_AUTHORIZATION=f"Bearer {body['access_token']}")
    assert profile.status_code == 200, profile.content

    hand_outs = Activity.objects.filter(kind="token_issued", data__client_id=app.client_id)
    assert hand_outs.count() == 2
    assert len(mail.outbox) >= 1 and "Acme Agent" in mail.outbox[-1].subject

    page = client.get("/settings/apps/")
    assert b"Acme Agent" in page.content and b"Get GitHub tokens" in page.content
    assert b"got a GitHub token" in page.content

    removed = client.post(f"/settings/apps/{app.pk}/remove/")
    assert removed.status_code == 302
    refused = exchange(client, app, secret, issued["access_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    refreshed = client.post(
        "/oauth/token/",
        {"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]},
        **basic(app, secret),
    )
    assert refreshed.status_code == 400
    assert b"No application has access" in client.get("/settings/apps/").content
    assert not Consent.objects.exists()


def test_resource_server_introspects_and_exchanges_tokens_issued_for_it(client, settings):
    sign_in(client, "github", email="alice@example.com")
    mcp, mcp_secret = resource_server(connections=["github", "google-oauth2"])
    app, secret = web_app(name="Some MCP client")
    code, verifier, _ = get_code(client, app, scope=None, resource=MCP_RESOURCE)
    issued = tokens(client, app, secret, code, verifier)
    assert set(issued["scope"].split()) == {"openid", "vault:github", "vault:google-oauth2"}

    seen = client.post(
        "/oauth/introspect/", {"token": issued["access_token"]}, **basic(mcp, mcp_secret)
    ).json()
    assert seen["active"] is True and seen["aud"] == MCP_RESOURCE and seen["client_id"] == app.client_id
    assert seen["sub"] and seen["exp"] > 0 and "vault:github" in seen["scope"]

    answer = exchange(client, mcp, mcp_secret, issued["access_token"])
    assert answer.status_code == 200, answer.content
    named = exchange(client, mcp, mcp_secret, issued["access_token"], resource=MCP_RESOURCE)
    assert named.status_code == 200, named.content
    elsewhere = exchange(
        client, mcp, mcp_secret, issued["access_token"], resource="https://other.example/mcp"
    )
    assert elsewhere.status_code == 400 and elsewhere.json()["error"] == "invalid_target"
    missing = exchange(client, mcp, mcp_secret, issued["access_token"], connection="google-oauth2")
    assert missing.status_code == 400
    body = missing.json()
    assert body["linking_site_error"] == "connection_required"
    assert body["authorize_url"].startswith(settings.SITE_URL + "/connect/cr_")
    page = client.get(body["authorize_url"].removeprefix(settings.SITE_URL))
    assert page.status_code == 200 and b"Some MCP client" in page.content
    assert b"Application \xe2\x80\x9cSome MCP client\xe2\x80\x9d asks you to connect Google" in page.content
    declined = client.post(f"/connect/{body['connect_request']}/decline/")
    assert declined.status_code == 302
    assert Activity.objects.filter(message__startswith="Declined application 'Some MCP client'").exists()


def test_token_without_resource_is_for_the_site_itself(client, settings):
    sign_in(client, "github", email="alice@example.com")
    mcp, mcp_secret = resource_server()
    app, secret = web_app()
    code, verifier, _ = get_code(client, app)
    issued = tokens(client, app, secret, code, verifier)
    own = client.post("/oauth/introspect/", {"token": issued["access_token"]}, **basic(app, secret)).json()
    assert own["active"] is True and own["aud"] == settings.SITE_URL
    other = client.post(
        "/oauth/introspect/", {"token": issued["access_token"]}, **basic(mcp, mcp_secret)
    ).json()
    assert other == {"active": False}


def test_consent_is_remembered_per_scope_set_and_asked_again_when_it_grows(client):
    sign_in(client, "github", email="alice@example.com")
    app, _secret = web_app()
    get_code(client, app, scope="openid vault:github")
    _verifier, challenge = pkce()
    same = client.get("/oauth/authorize/", authorize_query(app, challenge=challenge, scope="openid"))
    assert same.status_code == 302 and "code=" in same.headers["Location"]  # no page: remembered
    grown = client.get(
        "/oauth/authorize/", authorize_query(app, challenge=challenge, scope="openid vault:google-oauth2")
    )
    assert grown.status_code == 200 and b"Get Google tokens" in grown.content
    assert Consent.objects.get().scopes == ["openid", "vault:github"]


def test_consent_page_names_the_application_and_the_redirect_host(client):
    sign_in(client, "github", email="alice@example.com")
    app, _secret = web_app(name="Staff Tool")
    _verifier, challenge = pkce()
    page = client.get("/oauth/authorize/", authorize_query(app, challenge=challenge))
    assert page.status_code == 200
    text = page.content.decode()
    assert "Staff Tool" in text and "app.example.com" in text and "data-staff-registered" in text
    assert "Sign you in" in text and "Get GitHub tokens for you" in text
    # The browser may follow "Allow" to the application (form-action), and only there.
    assert "https://app.example.com" in page.headers["Content-Security-Policy"]
    assert authorize_query(app, challenge=challenge)["redirect_uri"] == REDIRECT
