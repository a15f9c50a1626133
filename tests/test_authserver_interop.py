"""Issue 15, interop: a confidential web application written with authlib's OAuth client (code it
did not write here) signs a person in with PKCE S256, the consent clicked in real Chromium, then
exchanges its access token for a sandbox GitHub token that works at the sandbox's GitHub API."""

from __future__ import annotations

import json
import secrets

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from jwcrypto import jwk, jwt

from activity.models import Activity

from .authserver_support import REDIRECT, TOKEN_EXCHANGE, web_app
from .browser import chromium_page, sandbox_sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_authlib_web_app_signs_in_with_pkce_and_exchanges_for_a_github_token(live_server, settings):
    settings.SITE_URL = live_server.url
    app, secret = web_app(name="Authlib Web App")
    meta = requests.get(f"{live_server.url}/.well-known/openid-configuration", timeout=10).json()
    assert meta["issuer"] == live_server.url

    session = OAuth2Session(
        app.client_id,
        secret,
        scope="openid profile vault:github",
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
    )
    verifier = secrets.token_urlsafe(48)
    url, state = session.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier)

    landed: list[str] = []
    with chromium_page(live_server.url) as page:
        page.route(
            "https://app.example.com/**",
            lambda route: (landed.append(route.request.url), route.fulfill(status=200, body="signed in"))[1],
        )
        page.goto("/")
        page.get_by_role("button", name="Continue with GitHub").click()
        sandbox_sign_in(page, email="alice@example.com", name="Alice")
        page.goto(url)
        assert page.locator("[data-staff-registered]").is_visible()
        assert "Authlib Web App" in page.locator("h1").inner_text()
        assert "Get GitHub tokens for you" in page.locator("[data-consent-lines]").inner_text()
        page.locator("[data-allow]").click()
        page.wait_for_url("https://app.example.com/**")

    assert landed and f"state={state}" in landed[0] and "iss=" in landed[0]
    token = session.fetch_token(
        meta["token_endpoint"], authorization_response=landed[0], code_verifier=verifier
    )
    assert token["token_type"].lower() == "bearer" and token["refresh_token"]

    # The ID token is signed with a key the JWKS publishes, for this client, by this issuer.
    keys = jwk.JWKSet.from_json(requests.get(meta["jwks_uri"], timeout=10).text)
    claims = json.loads(jwt.JWT(jwt=token["id_token"], key=keys, expected_type="JWS").claims)
    assert claims["iss"] == live_server.url and claims["aud"] == app.client_id and claims["sub"]

    exchanged = requests.post(
        meta["token_endpoint"],
        data={
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": token["access_token"],
            "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "connection": "github",
        },
        auth=(app.client_id, secret),
        timeout=20,
    )
    assert exchanged.status_code == 200, exchanged.text
    github = exchanged.json()
    assert github["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    profile = requests.get(
        f"{live_server.url}/sandbox/github/api/user",
        headers={"Authorization": f"Bearer {github['access_token']}"},
        timeout=10,
    )
    assert profile.status_code == 200 and profile.json()["id"]
    assert Activity.objects.filter(kind="token_issued", data__client_id=app.client_id).count() == 1
