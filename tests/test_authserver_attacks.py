"""Issue 15, "How it is verified": the attacks on the authorization server, each refused."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from authserver.models import Consent
from vault.models import ConnectRequest

from .authserver_support import (
    MCP_RESOURCE,
    REDIRECT,
    allow,
    authorize_query,
    basic,
    exchange,
    get_code,
    pkce,
    resource_server,
    tokens,
    web_app,
)
from .flows import round_trip, sign_in

pytestmark = pytest.mark.django_db


def _authorize(client, app, **query):
    _verifier, challenge = pkce()
    params = authorize_query(app, challenge=challenge)
    params.update(query)
    return client.get("/oauth/authorize/?" + urlencode({k: v for k, v in params.items() if v is not None}))


def _no_code(response) -> bool:
    return "code=" not in response.headers.get("Location", "")


@pytest.mark.parametrize(
    "pkce_params",
    [{"code_challenge": None, "code_challenge_method": None}, {"code_challenge_method": "plain"}],
    ids=["missing", "plain"],
)
def test_pkce_missing_or_plain_is_refused(client, pkce_params):
    sign_in(client, "github")
    app, _secret = web_app()
    response = _authorize(client, app, **pkce_params)
    assert _no_code(response)
    assert "error=invalid_request" in response.headers.get("Location", "") or response.status_code == 400
    assert not Consent.objects.exists()


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example.net/callback",
        REDIRECT + "/",
        "https://app.example.com/Callback",
        REDIRECT + "/extra",
        REDIRECT + "?next=https://evil.example.net",
    ],
    ids=["unregistered", "trailing-slash", "case", "extra-path", "extra-query"],
)
def test_redirect_uri_must_match_exactly(client, redirect_uri):
    sign_in(client, "github")
    app, _secret = web_app()
    response = _authorize(client, app, redirect_uri=redirect_uri)
    assert response.status_code == 400 and "Location" not in response.headers  # never sent there
    assert b"cannot be used" in response.content


def test_loopback_redirect_may_use_any_port_for_a_native_client(client):
    sign_in(client, "github")
    app, _secret = web_app(name="CLI", redirect_uris=["http://127.0.0.1/callback"], public=True)
    page = _authorize(client, app, redirect_uri="http://127.0.0.1:53117/callback", scope="openid")
    assert page.status_code == 200
    answer = allow(client, page)
    assert answer.headers["Location"].startswith("http://127.0.0.1:53117/callback?code=")
    other_host = _authorize(client, app, redirect_uri="http://127.0.0.2:53117/callback", scope="openid")
    assert other_host.status_code == 400


def test_a_replayed_code_is_refused(client):
    sign_in(client, "github")
    app, secret = web_app()
    code, verifier, _ = get_code(client, app)
    tokens(client, app, secret, code, verifier)
    replay = client.post(
        "/oauth/token/",
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
        **basic(app, secret),
    )
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"


def test_a_wrong_code_verifier_is_refused(client):
    sign_in(client, "github")
    app, secret = web_app()
    code, _verifier, _ = get_code(client, app)
    wrong = client.post(
        "/oauth/token/",
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": "x" * 50,
        },
        **basic(app, secret),
    )
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"


def test_reused_refresh_token_revokes_the_whole_grant(client):
    sign_in(client, "github")
    app, secret = web_app()
    code, verifier, _ = get_code(client, app)
    first = tokens(client, app, secret, code, verifier)

    def refresh(token):
        return client.post(
            "/oauth/token/", {"grant_type": "refresh_token", "refresh_token": token}, **basic(app, secret)
        )

    rotated = refresh(first["refresh_token"])
    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert exchange(client, app, secret, second["access_token"]).status_code == 200
    reuse = refresh(first["refresh_token"])  # a thief replays the old one
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    # The whole family is gone: the legitimate holder's newer tokens stop working too.
    assert refresh(second["refresh_token"]).status_code == 400
    assert exchange(client, app, secret, second["access_token"]).json()["error"] == "invalid_grant"


def test_a_token_for_resource_a_cannot_be_exchanged_or_read_by_client_b(client):
    sign_in(client, "github")
    resource_a, _secret_a = resource_server(name="Server A", connections=["github"])
    resource_b, secret_b = resource_server(
        name="Server B", resource="https://b.example.org/mcp", connections=["github"]
    )
    other_app, other_secret = web_app(name="Other app")
    app, secret = web_app(name="Client")
    code, verifier, _ = get_code(client, app, scope="openid vault:github", resource=MCP_RESOURCE)
    issued = tokens(client, app, secret, code, verifier)
    for caller, caller_secret in ((resource_b, secret_b), (other_app, other_secret)):
        refused = exchange(client, caller, caller_secret, issued["access_token"])
        assert refused.status_code == 400 and refused.json()["error"] == "unauthorized_client"
        seen = client.post(
            "/oauth/introspect/", {"token": issued["access_token"]}, **basic(caller, caller_secret)
        )
        assert seen.json() == {"active": False}
    wrong_secret = exchange(client, app, "not-the-secret", issued["access_token"])
    assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"
    assert resource_a


def test_a_resource_nobody_registered_is_refused_at_authorize(client):
    sign_in(client, "github")
    app, _secret = web_app()
    response = _authorize(client, app, resource="https://unknown.example.org/api")
    assert _no_code(response) and "invalid_target" in (
        response.headers.get("Location", "") + response.content.decode()
    )


def test_exchange_beyond_consent_is_refused_with_a_connect_request_that_extends_it(client, settings):
    sign_in(client, "github", email="alice@example.com")
    app, secret = web_app(provider_scopes={"github": ["read:user", "user:email"]})
    code, verifier, _ = get_code(client, app, scope="openid vault:github")
    issued = tokens(client, app, secret, code, verifier)

    beyond = exchange(client, app, secret, issued["access_token"], scope="repo")
    assert beyond.status_code == 400
    body = beyond.json()
    assert body["linking_site_error"] == "insufficient_scope" and body["required_scopes"] == ["repo"]
    request = ConnectRequest.objects.get(pk=body["connect_request"])
    assert request.client_id == app.client_id and request.agent_key_id is None and request.scopes == ["repo"]
    other = exchange(client, app, secret, issued["access_token"], connection="google-oauth2")
    assert other.json()["linking_site_error"] == "insufficient_scope"  # never consented at all

    # The person approves: grants repo at GitHub, then lets the application continue.
    page = client.get(f"/connect/{request.pk}/")
    assert b"Acme Agent" in page.content
    round_trip(
        client, "github", email="alice@example.com", scope=["repo"], next=f"/connect/{request.pk}/done/"
    )
    assert client.post(f"/connect/{request.pk}/done/").status_code == 200
    granted = exchange(client, app, secret, issued["access_token"], scope="repo")
    assert granted.status_code == 200, granted.content
    assert "repo" in Consent.objects.get().provider_scopes["github"]


def test_consent_for_vault_access_needs_sudo_mode(client, settings):
    sign_in(client, "github", email="alice@example.com")
    app, _secret = web_app()
    settings.SUDO_MODE_SECONDS = 3600
    page = _authorize(client, app)
    assert page.status_code == 200
    settings.SUDO_MODE_SECONDS = -1  # the sign-in is no longer recent
    again = _authorize(client, app)
    assert again.status_code == 302 and again.headers["Location"].startswith("/settings/reauthenticate/")
    posted = allow(client, page)  # the page left open, allowed after the window passed
    assert posted.status_code == 302 and posted.headers["Location"].startswith("/settings/reauthenticate/")
    assert not Consent.objects.exists()
    sign_in_only = _authorize(client, app, scope="openid")  # signing in needs no sudo
    assert sign_in_only.status_code == 200

    # Confirming (a fresh sign-in) comes back to the very same request, and the page is shown.
    settings.SUDO_MODE_SECONDS = 3600
    back_to = parse_qs(urlsplit(again.headers["Location"]).query)["next"][0]
    assert back_to.startswith("/oauth/authorize/?")
    confirmed = round_trip(client, "github", email="alice@example.com", purpose="reauth", next=back_to)
    assert confirmed.location == back_to
    assert b"data-allow" in client.get(back_to).content


def test_deny_sends_the_person_back_with_access_denied_and_grants_nothing(client):
    sign_in(client, "github")
    app, _secret = web_app()
    page = _authorize(client, app)
    denied = allow(client, page, deny=True)
    assert denied.headers["Location"].startswith(REDIRECT + "?error=access_denied")
    assert not Consent.objects.exists()


def test_approval_prompt_auto_does_not_skip_the_consent_page(client):
    sign_in(client, "github")
    app, secret = web_app()
    code, verifier, _ = get_code(client, app, scope="openid vault:github")
    tokens(client, app, secret, code, verifier)  # a live token covering these scopes
    Consent.objects.all().delete()  # but no consent remembered any more
    again = _authorize(client, app, scope="openid vault:github", approval_prompt="auto")
    assert again.status_code == 200 and b"data-allow" in again.content


def test_signed_out_person_is_sent_to_sign_in_first(client):
    app, _secret = web_app()
    response = _authorize(client, app)
    assert response.status_code == 302 and response.headers["Location"].startswith("/?next=/oauth/authorize/")


def test_an_application_never_gets_more_than_the_provider_scopes_it_was_allowed(client):
    sign_in(client, "github", email="alice@example.com")  # GitHub granted read:user and user:email
    app, secret = web_app(provider_scopes={"github": ["read:user"]})
    code, verifier, _ = get_code(client, app, scope="openid vault:github")
    issued = tokens(client, app, secret, code, verifier)
    refused = exchange(client, app, secret, issued["access_token"])
    assert refused.status_code == 400
    body = refused.json()
    assert body["linking_site_error"] == "access_denied" and body["scopes_beyond_limit"] == ["user:email"]
    assert "allowed this application GitHub tokens with read:user only" in body["error_description"]
