"""The sandbox's Google and GitHub stand-ins: real response shapes, real protocol rules.

Most tests drive the sandbox endpoints with Django's test client, as a browser and a backend would;
the last group drives the real backend classes, whose ``requests`` calls reach the sandbox
in-process through ``tests.sandbox_support``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.test import Client, RequestFactory
from django.urls import include, path
from django.utils import timezone
from social_core.exceptions import AuthCredentialError, AuthProviderError
from social_django.utils import load_backend, load_strategy

from sandbox import providers, state
from sandbox.backends import SandboxGithubOAuth2, SandboxGoogleOAuth2
from sandbox.models import AccessToken, Grant, RefreshToken

from .sandbox_support import install_testserver_transport, is_testserver_url

pytestmark = pytest.mark.django_db

GOOGLE_REDIRECT = "http://testserver/complete/google-oauth2/"
GITHUB_REDIRECT = "http://testserver/complete/github/"
AUTHORIZE = {"google": "/sandbox/google/authorize", "github": "/sandbox/github/login/oauth/authorize"}
GOOGLE_EMAIL_SCOPE = "https://www.googleapis.com/auth/userinfo.email"
GOOGLE_PROFILE_SCOPE = "https://www.googleapis.com/auth/userinfo.profile"


# --- helpers ------------------------------------------------------------------------------------------


def google_client() -> tuple[str, str]:
    return settings.SOCIAL_AUTH_GOOGLE_OAUTH2_KEY, settings.SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET


def github_client() -> tuple[str, str]:
    return settings.SOCIAL_AUTH_GITHUB_KEY, settings.SOCIAL_AUTH_GITHUB_SECRET


def authorize_params(provider: str, **overrides: str) -> dict[str, str]:
    if provider == "google":
        params = {
            "client_id": google_client()[0],
            "redirect_uri": GOOGLE_REDIRECT,
            "response_type": "code",
            "scope": "openid email profile",
            "state": "google-state-123",
            "access_type": "offline",
        }
    else:
        params = {
            "client_id": github_client()[0],
            "redirect_uri": GITHUB_REDIRECT,
            "response_type": "code",
            "scope": "read:user,user:email",
            "state": "github-state-456",
        }
    params.update(overrides)
    return {key: value for key, value in params.items() if value is not None}


def authorize_url(provider: str, **overrides: str) -> str:
    return f"{AUTHORIZE[provider]}?{urlencode(authorize_params(provider, **overrides))}"


def submit(
    client: Client,
    provider: str,
    *,
    email: str = "ada@example.com",
    name: str = "Ada Lovelace",
    verified: bool = True,
    public: bool = False,
    scopes: list[str] | None = None,
    decision: str = "allow",
    **params: str,
):
    """POST the sign-in form like a person; ``scopes=None`` leaves every requested scope ticked."""
    query = authorize_params(provider, **params)
    if scopes is None:
        separator = " " if provider == "google" else ","
        scopes = [s for s in query.get("scope", "").split(separator) if s]
    form: dict = {"email": email, "name": name, "scope": scopes, "decision": decision}
    if verified:
        form["email_verified"] = "on"
    if public:
        form["email_public"] = "on"
    return client.post(authorize_url(provider, **params), form)


def redirect_query(response) -> dict[str, str]:
    assert response.status_code == 302, response.content
    return {key: values[0] for key, values in parse_qs(urlsplit(response["Location"]).query).items()}


def code_for(client: Client, provider: str, **kwargs) -> str:
    return redirect_query(submit(client, provider, **kwargs))["code"]


def google_token(client: Client, **data: str):
    client_id, secret = google_client()
    body = {"client_id": client_id, "client_secret": secret, **data}
    return client.post("/sandbox/google/token", body)


def google_exchange(client: Client, code: str, **extra: str):
    return google_token(
        client, grant_type="authorization_code", code=code, redirect_uri=GOOGLE_REDIRECT, **extra
    )


def github_token(client: Client, *, accept_json: bool = True, **data: str):
    client_id, secret = github_client()
    body = {"client_id": client_id, "client_secret": secret, **data}
    headers = {"Accept": "application/json"} if accept_json else {}
    return client.post("/sandbox/github/login/oauth/access_token", body, headers=headers)


def github_exchange(client: Client, code: str, **extra: str):
    return github_token(client, code=code, redirect_uri=GITHUB_REDIRECT, **extra)


def google_tokens(client: Client, **kwargs) -> dict:
    response = google_exchange(client, code_for(client, "google", **kwargs))
    assert response.status_code == 200, response.content
    return response.json()


def github_tokens(client: Client, **kwargs) -> dict:
    response = github_exchange(client, code_for(client, "github", **kwargs))
    assert response.status_code == 200, response.content
    return response.json()


def userinfo(client: Client, token: str):
    return client.get("/sandbox/google/userinfo", headers={"Authorization": f"Bearer {token}"})


def github_api(client: Client, path: str, token: str, scheme: str = "token"):
    return client.get(f"/sandbox/github/api/{path}", headers={"Authorization": f"{scheme} {token}"})


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def delete_github_grant(client: Client, access_token: str, *, secret: str | None = None):
    client_id, real_secret = github_client()
    return client.delete(
        f"/sandbox/github/api/applications/{client_id}/grant",
        data=json.dumps({"access_token": access_token}),
        content_type="application/json",
        headers={"Authorization": basic(client_id, secret or real_secret)},
    )


# --- the sign-in page -------------------------------------------------------------------------------


@pytest.mark.parametrize(("provider", "title"), [("google", "Sandbox Google"), ("github", "Sandbox GitHub")])
def test_authorize_form_renders_named_fields(client, provider, title):
    response = client.get(authorize_url(provider))
    assert response.status_code == 200
    html = response.content.decode()
    assert f"<h1>{title}</h1>" in html
    assert "development stand-in" in html.lower()
    assert 'name="email"' in html
    assert '<label for="id_email">Email</label>' in html
    assert 'name="name"' in html
    assert '<label for="id_email_verified">Email verified</label>' in html
    verified_input = html.split('id="id_email_verified"')[1].split(">")[0]
    assert "checked" in verified_input
    requested = ["openid", "email", "profile"] if provider == "google" else ["read:user", "user:email"]
    for scope in requested:
        assert f'name="scope" value="{scope}"' in html
    assert html.count('name="scope"') == html.count("checked") - 1  # every scope ticked, plus verified
    assert 'name="decision" value="allow"' in html
    assert 'name="decision" value="deny"' in html
    assert "csrfmiddlewaretoken" in html
    assert "https://" not in html.split("<body>")[0]  # no CDN in the head
    assert response["Cache-Control"].startswith("max-age=0")


def test_login_hint_prefills_email(client):
    response = client.get(authorize_url("google", login_hint="grace@example.com"))
    assert 'value="grace@example.com"' in response.content.decode()


@pytest.mark.parametrize("provider", ["google", "github"])
def test_allow_redirects_with_code_and_state(client, provider):
    response = submit(client, provider)
    location = response["Location"]
    redirect = GOOGLE_REDIRECT if provider == "google" else GITHUB_REDIRECT
    assert location.startswith(redirect + "?")
    query = redirect_query(response)
    assert query["state"] == authorize_params(provider)["state"]
    assert len(query["code"]) >= 32
    assert "error" not in query


@pytest.mark.parametrize("provider", ["google", "github"])
def test_deny_redirects_with_access_denied(client, provider):
    response = client.post(authorize_url(provider), {"decision": "deny"})
    query = redirect_query(response)
    assert query["error"] == "access_denied"
    assert query["state"] == authorize_params(provider)["state"]
    assert "code" not in query
    assert not Grant.objects.exists()


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://evil.example/complete/google-oauth2/",
        "https://testserver.evil.example/cb",
        "//evil.example/cb",
        "javascript:alert(1)",
        "/complete/google-oauth2/",
        "http://user@evil.example/cb",
        "http://testserver/cb#fragment",
        "",
    ],
)
def test_foreign_or_bad_redirect_uri_is_refused_with_a_page(client, redirect_uri):
    for response in (
        client.get(authorize_url("google", redirect_uri=redirect_uri)),
        client.post(
            authorize_url("google", redirect_uri=redirect_uri), {"decision": "allow", "email": "a@b.co"}
        ),
        client.post(authorize_url("google", redirect_uri=redirect_uri), {"decision": "deny"}),
    ):
        assert response.status_code == 400
        assert "Location" not in response
        assert "request refused" in response.content.decode()
    assert not Grant.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"client_id": "someone-else"}, "invalid_client"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": None}, "response_type"),
        ({"scope": ""}, "scope"),
        ({"code_challenge": "x" * 43, "code_challenge_method": "S512"}, "code_challenge_method"),
    ],
)
def test_invalid_authorize_requests_are_refused(client, overrides, fragment):
    response = client.get(authorize_url("google", **overrides))
    assert response.status_code == 400
    assert fragment in response.content.decode()


def test_repeated_parameters_are_refused(client):
    query = urlencode(authorize_params("google")) + "&redirect_uri=" + "http%3A%2F%2Fevil.example%2F"
    response = client.get(f"/sandbox/google/authorize?{query}")
    assert response.status_code == 400


def test_sign_in_form_needs_csrf_token(client):
    strict = Client(enforce_csrf_checks=True)
    response = strict.post(authorize_url("github"), {"decision": "allow", "email": "ada@example.com"})
    assert response.status_code == 403


def test_invalid_email_redisplays_the_form_with_values_kept(client):
    response = submit(client, "google", email="not-an-email", name="Ada", verified=False, scopes=["openid"])
    assert response.status_code == 200
    html = response.content.decode()
    assert 'role="alert"' in html
    assert 'value="not-an-email"' in html
    assert "checked" not in html.split('id="id_email_verified"')[1].split(">")[0]
    assert html.count("checked") == 1  # only the openid scope stays ticked
    assert not Grant.objects.exists()


def test_google_prompt_none_answers_login_required(client):
    query = redirect_query(client.get(authorize_url("google", prompt="none")))
    assert query == {"error": "login_required", "state": "google-state-123"}


# --- code exchange ----------------------------------------------------------------------------------


def test_google_code_exchange_shape(client, settings):
    settings.SANDBOX_TOKEN_TTL = 120
    tokens = google_tokens(client)
    assert set(tokens) == {"access_token", "expires_in", "refresh_token", "scope", "token_type", "id_token"}
    assert tokens["access_token"].startswith("ya29.")
    assert tokens["refresh_token"].startswith("1//")
    assert tokens["expires_in"] == 120
    assert tokens["token_type"] == "Bearer"
    assert tokens["scope"].split() == ["openid", GOOGLE_EMAIL_SCOPE, GOOGLE_PROFILE_SCOPE]
    header, payload, signature = tokens["id_token"].split(".")
    assert json.loads(base64.urlsafe_b64decode(header + "=="))["alg"] == "HS256"
    expected = hmac.new(google_client()[1].encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "==") == expected
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    assert claims["sub"] == providers.google_sub("ada@example.com")
    assert claims["aud"] == google_client()[0]
    assert claims["email_verified"] is True


def test_google_token_response_headers_forbid_caching(client):
    response = google_exchange(client, code_for(client, "google"))
    assert response["Cache-Control"] == "no-store"
    assert response["Content-Type"].startswith("application/json")


def test_google_nonce_is_echoed_in_id_token(client):
    tokens = google_tokens(client, nonce="n-0S6_WzA2Mj")
    claims = json.loads(base64.urlsafe_b64decode(tokens["id_token"].split(".")[1] + "=="))
    assert claims["nonce"] == "n-0S6_WzA2Mj"


def test_google_online_access_gets_no_refresh_token(client):
    tokens = google_tokens(client, access_type="online")
    assert "refresh_token" not in tokens


def test_google_refresh_token_again_only_with_prompt_consent(client):
    assert "refresh_token" in google_tokens(client)
    assert "refresh_token" not in google_tokens(client)
    assert "refresh_token" in google_tokens(client, prompt="consent")


def test_google_client_authentication(client):
    code = code_for(client, "google")
    wrong = client.post(
        "/sandbox/google/token",
        {"grant_type": "authorization_code", "code": code, "redirect_uri": GOOGLE_REDIRECT},
        headers={"Authorization": basic(google_client()[0], "wrong")},
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    unknown = client.post("/sandbox/google/token", {"grant_type": "authorization_code", "client_id": "x"})
    assert unknown.status_code == 401
    good = client.post(
        "/sandbox/google/token",
        {
            "grant_type": "authorization_code",
            "code": code_for(client, "google"),
            "redirect_uri": GOOGLE_REDIRECT,
        },
        headers={"Authorization": basic(*google_client())},
    )
    assert good.status_code == 200


def test_code_is_single_use_and_replay_revokes_the_grant(client):
    code = code_for(client, "google")
    first = google_exchange(client, code)
    assert first.status_code == 200
    second = google_exchange(client, code)
    assert second.status_code == 400
    assert second.json()["error"] == "invalid_grant"
    assert not state.token_is_active("google", first.json()["access_token"])


def test_github_code_is_single_use(client):
    code = code_for(client, "github")
    assert github_exchange(client, code).json()["access_token"].startswith("ghu_")
    replay = github_exchange(client, code)
    assert replay.status_code == 200
    assert replay.json()["error"] == "bad_verification_code"


def test_unknown_or_expired_code_is_refused(client):
    assert google_exchange(client, "4/0Anot-a-code").json()["error"] == "invalid_grant"
    code = code_for(client, "google")
    Grant.objects.get().codes.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert google_exchange(client, code).status_code == 400


def test_redirect_uri_must_match_at_token_endpoint(client):
    response = google_token(
        client,
        grant_type="authorization_code",
        code=code_for(client, "google"),
        redirect_uri="http://testserver/other/",
    )
    assert response.status_code == 400
    assert response.json()["error"] == "redirect_uri_mismatch"


@pytest.mark.parametrize("provider", ["google", "github"])
def test_pkce_verified_at_token_endpoint(client, provider):
    verifier, challenge = pkce_pair()
    pkce = {"code_challenge": challenge, "code_challenge_method": "S256"}
    exchange = google_exchange if provider == "google" else github_exchange

    good = exchange(client, code_for(client, provider, **pkce), code_verifier=verifier)
    assert good.status_code == 200
    assert "access_token" in good.json()

    other_verifier, _ = pkce_pair()
    wrong = exchange(client, code_for(client, provider, **pkce), code_verifier=other_verifier)
    missing = exchange(client, code_for(client, provider, **pkce))
    for refused in (wrong, missing):
        assert "access_token" not in refused.json()
        expected = "invalid_grant" if provider == "google" else "bad_verification_code"
        assert refused.json()["error"] == expected


def test_github_code_exchange_shape(client, settings):
    settings.SANDBOX_TOKEN_TTL = 300
    tokens = github_tokens(client)
    assert tokens == {
        "access_token": tokens["access_token"],
        "expires_in": 300,
        "refresh_token": tokens["refresh_token"],
        "refresh_token_expires_in": 15897600,
        "scope": "",
        "token_type": "bearer",
    }
    assert tokens["access_token"].startswith("ghu_")
    assert len(tokens["access_token"]) - 4 >= 32
    assert tokens["refresh_token"].startswith("ghr_")


def test_github_answers_form_encoded_without_accept_json(client):
    response = github_exchange(client, code_for(client, "github"), accept_json=False)
    assert response["Content-Type"].startswith("application/x-www-form-urlencoded")
    body = parse_qs(response.content.decode(), keep_blank_values=True)
    assert body["token_type"] == ["bearer"]
    assert body["access_token"][0].startswith("ghu_")
    assert body["scope"] == [""]


def test_github_bad_client_credentials(client):
    code = code_for(client, "github")
    response = client.post(
        "/sandbox/github/login/oauth/access_token",
        {"client_id": github_client()[0], "client_secret": "wrong", "code": code},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["error"] == "incorrect_client_credentials"
    assert body["error_description"]
    assert body["error_uri"].startswith("https://docs.github.com/")


# --- refresh ------------------------------------------------------------------------------------------


def test_github_refresh_rotates_and_old_refresh_token_dies(client):
    tokens = github_tokens(client)
    refreshed = github_token(client, grant_type="refresh_token", refresh_token=tokens["refresh_token"]).json()
    assert refreshed["access_token"].startswith("ghu_")
    assert refreshed["refresh_token"].startswith("ghr_")
    assert refreshed["refresh_token"] != tokens["refresh_token"]
    assert refreshed["access_token"] != tokens["access_token"]

    again = github_token(client, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert again.status_code == 200
    assert again.json()["error"] == "bad_refresh_token"
    assert not state.token_is_active("github", tokens["refresh_token"])
    assert state.token_is_active("github", refreshed["refresh_token"])

    third = github_token(client, grant_type="refresh_token", refresh_token=refreshed["refresh_token"]).json()
    assert third["refresh_token"] not in (tokens["refresh_token"], refreshed["refresh_token"])


def test_google_refresh_does_not_rotate(client):
    tokens = google_tokens(client)
    for _ in range(2):
        response = google_token(client, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
        assert response.status_code == 200
        body = response.json()
        assert "refresh_token" not in body
        assert body["access_token"].startswith("ya29.")
        assert body["token_type"] == "Bearer"
        assert body["scope"] == tokens["scope"]
        assert userinfo(client, body["access_token"]).status_code == 200
    assert state.token_is_active("google", tokens["refresh_token"])


def test_google_unknown_refresh_token_is_invalid_grant(client):
    response = google_token(client, grant_type="refresh_token", refresh_token="1//nope")
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "Token has been expired or revoked.",
    }


def test_refresh_count_counts_every_refresh_request(client):
    assert state.refresh_count("github") == 0
    tokens = github_tokens(client)
    github_token(client, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    github_token(client, grant_type="refresh_token", refresh_token=tokens["refresh_token"])  # refused
    assert state.refresh_count("github") == 2
    assert state.refresh_count("github", successful=True) == 1
    assert state.refresh_count("google") == 0
    state.reset("github")
    assert state.refresh_count("github") == 0


# --- profiles -----------------------------------------------------------------------------------------


def test_google_userinfo_shape(client):
    tokens = google_tokens(client, email="Ada.Lovelace@Example.com", name="Ada King Lovelace")
    response = userinfo(client, tokens["access_token"])
    assert response.status_code == 200
    assert response.json() == {
        "sub": providers.google_sub("ada.lovelace@example.com"),
        "name": "Ada King Lovelace",
        "given_name": "Ada",
        "family_name": "King Lovelace",
        "picture": response.json()["picture"],
        "email": "Ada.Lovelace@Example.com",
        "email_verified": True,
    }
    assert response.json()["picture"].startswith("http://testserver/sandbox/avatar/")
    avatar = client.get(response.json()["picture"].removeprefix("http://testserver"))
    assert avatar.status_code == 200
    assert avatar["Content-Type"] == "image/svg+xml"
    assert b">AK<" in avatar.content


def test_google_userinfo_rejects_unknown_and_expired_tokens(client):
    assert userinfo(client, "ya29.nope").status_code == 401
    assert client.get("/sandbox/google/userinfo").status_code == 401
    tokens = google_tokens(client)
    AccessToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = userinfo(client, tokens["access_token"])
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert not state.token_is_active("google", tokens["access_token"])


def test_unverified_checkbox_is_reflected(client):
    google = google_tokens(client, verified=False)
    assert userinfo(client, google["access_token"]).json()["email_verified"] is False
    github = github_tokens(client, verified=False)
    emails = github_api(client, "user/emails", github["access_token"]).json()
    assert emails == [
        {"email": "ada@example.com", "primary": True, "verified": False, "visibility": "private"}
    ]


def test_github_user_and_emails_shape(client):
    tokens = github_tokens(client, email="grace@example.com", name="Grace Hopper")
    for scheme in ("token", "Bearer"):
        response = github_api(client, "user", tokens["access_token"], scheme)
        assert response.status_code == 200
        user = response.json()
        assert {"login", "id", "node_id", "avatar_url", "name", "email", "html_url", "type"} <= set(user)
        assert user["id"] == providers.github_id("grace@example.com")
        assert isinstance(user["id"], int)
        assert 10_000_000 <= user["id"] < 100_000_000
        assert user["login"] == providers.github_login("grace@example.com")
        assert user["login"].startswith("grace-")
        assert user["name"] == "Grace Hopper"
        assert user["email"] is None
        assert user["type"] == "User"
    emails = github_api(client, "user/emails", tokens["access_token"]).json()
    assert emails == [
        {"email": "grace@example.com", "primary": True, "verified": True, "visibility": "private"}
    ]


def test_github_public_email_appears_on_user(client):
    tokens = github_tokens(client, public=True)
    assert github_api(client, "user", tokens["access_token"]).json()["email"] == "ada@example.com"


def test_github_api_rejects_bad_tokens(client):
    response = github_api(client, "user", "ghu_nope")
    assert response.status_code == 401
    assert response.json()["message"] == "Bad credentials"
    assert client.get("/sandbox/github/api/user/emails").status_code == 401


def test_same_email_gives_same_subject(client):
    first = google_tokens(client, email="Linus@Example.com")
    second = google_tokens(client, email="  linus@example.com ")
    other = google_tokens(client, email="someone@example.com")
    subs = [userinfo(client, t["access_token"]).json()["sub"] for t in (first, second, other)]
    assert subs[0] == subs[1] != subs[2]
    assert len(subs[0]) == 21
    assert subs[0].isdigit()
    gh_first = github_tokens(client, email="linus@example.com")
    gh_second = github_tokens(client, email="LINUS@example.com")
    ids = [github_api(client, "user", t["access_token"]).json()["id"] for t in (gh_first, gh_second)]
    assert ids[0] == ids[1]
    assert providers.github_login("linus@example.com") == providers.github_login("LINUS@EXAMPLE.COM")
    assert providers.github_login("linus@example.com") != providers.github_login("linus@example.org")


def test_granted_scopes_are_the_checked_ones(client):
    tokens = google_tokens(client, scopes=["openid", "email"], access_type="online")
    assert tokens["scope"].split() == ["openid", GOOGLE_EMAIL_SCOPE]
    claims = userinfo(client, tokens["access_token"]).json()
    assert "email" in claims
    assert "name" not in claims  # no profile scope, no profile fields (as Google answers)


def test_include_granted_scopes_unions_earlier_grants(client):
    google_tokens(client, scope="openid email")
    narrow = google_tokens(
        client, scope="https://www.googleapis.com/auth/drive.readonly", access_type="online"
    )
    assert narrow["scope"] == "https://www.googleapis.com/auth/drive.readonly"
    wide = google_tokens(
        client,
        scope="https://www.googleapis.com/auth/calendar.readonly",
        include_granted_scopes="true",
        access_type="online",
    )
    assert set(wide["scope"].split()) == {
        "openid",
        GOOGLE_EMAIL_SCOPE,
        "https://www.googleapis.com/auth/drive.readonly",
        "https://www.googleapis.com/auth/calendar.readonly",
    }


def test_tokens_are_stored_only_as_hashes(client):
    tokens = google_tokens(client)
    access, refresh = tokens["access_token"], tokens["refresh_token"]
    assert AccessToken.objects.get().token_hash == hashlib.sha256(access.encode()).hexdigest()
    assert RefreshToken.objects.get().token_hash == hashlib.sha256(refresh.encode()).hexdigest()
    for model in (AccessToken, RefreshToken, Grant):
        for row in model.objects.values():
            assert access not in str(row)
            assert refresh not in str(row)


# --- revocation -----------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["access_token", "refresh_token"])
def test_google_revoke_kills_the_whole_grant(client, which):
    tokens = google_tokens(client)
    response = client.post("/sandbox/google/revoke", {"token": tokens[which]})
    assert response.status_code == 200
    assert response.json() == {}
    assert userinfo(client, tokens["access_token"]).status_code == 401
    assert not state.token_is_active("google", tokens["access_token"])
    assert not state.token_is_active("google", tokens["refresh_token"])
    refresh = google_token(client, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert refresh.json()["error"] == "invalid_grant"
    again = client.post("/sandbox/google/revoke", {"token": tokens[which]})
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_token"


def test_google_revoke_accepts_token_in_query(client):
    tokens = google_tokens(client)
    assert client.post(f"/sandbox/google/revoke?token={tokens['access_token']}").status_code == 200
    assert not state.token_is_active("google", tokens["refresh_token"])


def test_reauthorizing_after_revocation_starts_a_new_grant(client):
    tokens = google_tokens(client, scope="openid email")
    client.post("/sandbox/google/revoke", {"token": tokens["access_token"]})
    fresh = google_tokens(client, scope="openid", include_granted_scopes="true")
    assert fresh["scope"] == "openid"
    assert "refresh_token" in fresh


def test_github_delete_grant(client):
    tokens = github_tokens(client)
    assert delete_github_grant(client, tokens["access_token"], secret="wrong").status_code == 401
    assert delete_github_grant(client, "ghu_unknown").status_code == 404
    response = delete_github_grant(client, tokens["access_token"])
    assert response.status_code == 204
    assert response.content == b""
    assert github_api(client, "user", tokens["access_token"]).status_code == 401
    assert not state.token_is_active("github", tokens["access_token"])
    assert not state.token_is_active("github", tokens["refresh_token"])
    refresh = github_token(client, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert refresh.json()["error"] == "bad_refresh_token"
    assert delete_github_grant(client, tokens["access_token"]).status_code == 404


def test_github_delete_grant_works_with_an_expired_access_token(client):
    tokens = github_tokens(client)
    AccessToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert delete_github_grant(client, tokens["access_token"]).status_code == 204
    assert not state.token_is_active("github", tokens["refresh_token"])


# --- failure modes ------------------------------------------------------------------------------------


def test_failure_mode_api(client):
    assert state.get_failure_mode("google") == "normal"
    state.set_failure_mode("google-oauth2", "slow")
    assert state.get_failure_mode("google") == "slow"
    assert state.get_failure_mode("github") == "normal"
    with pytest.raises(ValueError, match="Unknown failure mode"):
        state.set_failure_mode("google", "broken")
    with pytest.raises(ValueError, match="Unknown sandbox provider"):
        state.get_failure_mode("gitlab")


@pytest.mark.parametrize("provider", ["google", "github"])
def test_server_error_mode(client, provider):
    tokens = google_tokens(client) if provider == "google" else github_tokens(client)
    state.set_failure_mode(provider, "server_error")
    send = google_token if provider == "google" else github_token
    response = send(client, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert response.status_code == 503
    assert response.json()["error"] == "server_error"
    assert state.token_is_active(provider, tokens["refresh_token"])  # an outage changes nothing
    state.set_failure_mode(provider, "normal")
    assert send(client, grant_type="refresh_token", refresh_token=tokens["refresh_token"]).status_code == 200


@pytest.mark.parametrize("provider", ["google", "github"])
def test_rate_limited_mode(client, provider):
    state.set_failure_mode(provider, "rate_limited")
    send = google_token if provider == "google" else github_token
    response = send(client, grant_type="refresh_token", refresh_token="whatever")
    assert response.status_code == 429
    assert response["Retry-After"] == "30"
    assert "error" in response.json()


def test_invalid_grant_mode_refuses_refresh_only(client):
    google = google_tokens(client)
    github = github_tokens(client)
    state.set_failure_mode("google", "invalid_grant")
    state.set_failure_mode("github", "invalid_grant")
    refused = google_token(client, grant_type="refresh_token", refresh_token=google["refresh_token"])
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    gh_refused = github_token(client, grant_type="refresh_token", refresh_token=github["refresh_token"])
    assert gh_refused.status_code == 200
    assert gh_refused.json()["error"] == "bad_refresh_token"
    assert "access_token" in google_tokens(client)  # code exchange still works
    assert "access_token" in github_tokens(client)


def test_slow_mode_sleeps_then_answers(client, settings, monkeypatch):
    slept = []
    monkeypatch.setattr("sandbox.answers.time.sleep", slept.append)
    settings.SANDBOX_SLOW_SECONDS = 2.5
    tokens = github_tokens(client)
    state.set_failure_mode("github", "slow")
    response = github_token(client, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert slept == [2.5]
    assert "access_token" in response.json()
    del settings.SANDBOX_SLOW_SECONDS
    github_token(client, grant_type="refresh_token", refresh_token=response.json()["refresh_token"])
    assert slept == [2.5, 6.0]


# --- the index page -------------------------------------------------------------------------------


def test_index_lists_stand_ins_and_sets_failure_modes(client):
    page = client.get("/sandbox/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Sandbox Google" in html
    assert "Sandbox GitHub" in html
    assert '<label for="id_google_mode">' in html
    response = client.post("/sandbox/", {"google_mode": "rate_limited", "github_mode": "server_error"})
    assert response.status_code == 302
    assert state.get_failure_mode("google") == "rate_limited"
    assert state.get_failure_mode("github") == "server_error"
    assert client.post("/sandbox/", {"google_mode": "bogus"}).status_code == 400
    client.post("/sandbox/", {"action": "reset"})
    assert state.get_failure_mode("github") == "normal"


def test_index_form_needs_csrf_token():
    strict = Client(enforce_csrf_checks=True)
    assert strict.post("/sandbox/", {"google_mode": "slow"}).status_code == 403
    assert state.get_failure_mode("google") == "normal"


# --- the real backends against the sandbox ----------------------------------------------------------


@pytest.fixture
def transport(monkeypatch):
    return install_testserver_transport(monkeypatch)


def test_transport_intercepts_only_http_testserver():
    assert is_testserver_url("http://testserver/sandbox/google/token")
    assert is_testserver_url("http://testserver:80/x?y=1")
    assert not is_testserver_url("https://testserver/x")
    assert not is_testserver_url("http://testserver:8000/x")
    assert not is_testserver_url("http://testserver.example/x")
    assert not is_testserver_url("http://example.com/")


def test_transport_leaves_other_urls_to_the_network(transport):
    session = requests.Session()
    assert session.get_adapter("http://testserver/sandbox/") is transport
    for url in ("https://example.com/", "http://127.0.0.1:8000/sandbox/", "https://testserver/"):
        assert session.get_adapter(url) is not transport
        assert isinstance(session.get_adapter(url), requests.adapters.HTTPAdapter)


def test_backends_are_loaded_from_settings():
    strategy = load_strategy()
    assert isinstance(load_backend(strategy, "google-oauth2", redirect_uri=None), SandboxGoogleOAuth2)
    assert isinstance(load_backend(strategy, "github", redirect_uri=None), SandboxGithubOAuth2)


def test_backend_urls_follow_site_url_never_the_request_host_or_the_setting(client, settings):
    # The Host header never picks where the sandbox (and the redirect_uri) lives: SITE_URL does.
    settings.SITE_URL = "http://localhost:8000"
    request = RequestFactory().get("/login/google-oauth2/", HTTP_HOST="127.0.0.1:9999")
    request.session = client.session
    google = load_backend(load_strategy(request), "google-oauth2", redirect_uri="/complete/google-oauth2/")
    assert google.authorization_url() == "http://localhost:8000/sandbox/google/authorize"
    assert google.access_token_url() == "http://localhost:8000/sandbox/google/token"
    assert google.userinfo_url() == "http://localhost:8000/sandbox/google/userinfo"
    assert google.revoke_token_url("t", "uid") == "http://localhost:8000/sandbox/google/revoke"
    assert google.get_redirect_uri() == "http://localhost:8000/complete/google-oauth2/"
    settings.SANDBOX_BASE_URL = "http://127.0.0.1:9000"
    github = load_backend(load_strategy(), "github", redirect_uri=None)
    assert github.authorization_url() == "http://127.0.0.1:9000/sandbox/github/login/oauth/authorize"
    assert github.access_token_url() == "http://127.0.0.1:9000/sandbox/github/login/oauth/access_token"
    assert github.api_url() == "http://127.0.0.1:9000/sandbox/github/api/"
    assert github.revoke_token_url("t", "uid") == (
        f"http://127.0.0.1:9000/sandbox/github/api/applications/{github_client()[0]}/grant"
    )


def test_backend_auth_url_opens_the_sandbox_form(client):
    request = RequestFactory().get("/login/google-oauth2/")
    request.session = client.session
    backend = load_backend(load_strategy(request), "google-oauth2", redirect_uri="/complete/google-oauth2/")
    url = backend.auth_url()
    assert url.startswith("http://testserver/sandbox/google/authorize?")
    page = client.get(url.removeprefix("http://testserver"))
    assert page.status_code == 200
    assert "Sandbox Google" in page.content.decode()


def _relay_refresh(request: HttpRequest) -> JsonResponse:
    """A site view that refreshes through the real backend, as the vault will inside a request."""
    backend = load_backend(load_strategy(request), "github", redirect_uri=None)
    refreshed = backend.refresh_token(request.GET["refresh_token"])
    profile = requests.get(
        "http://testserver/sandbox/github/api/user",
        headers={"Authorization": f"Bearer {refreshed['access_token']}", "Accept": "application/json"},
        timeout=5,
    )
    return JsonResponse({"refreshed": refreshed, "status": profile.status_code, "user": profile.json()})


urlpatterns = [path("sandbox/", include("sandbox.urls")), path("relay/", _relay_refresh)]


@pytest.mark.urls(__name__)
def test_transport_reaches_the_sandbox_from_inside_a_request(client, transport):
    tokens = github_tokens(client)
    response = client.get("/relay/", {"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == 200
    assert body["user"]["id"] == providers.github_id("ada@example.com")
    # What the inner requests wrote is visible to the outer test (same connection, same transaction).
    assert not state.token_is_active("github", tokens["refresh_token"])
    assert state.token_is_active("github", body["refreshed"]["refresh_token"])
    assert [method for method, _url in transport.calls] == ["POST", "GET"]


def test_real_github_backend_refreshes_against_the_sandbox(client, transport):
    tokens = github_tokens(client)
    backend = load_backend(load_strategy(), "github", redirect_uri=None)

    refreshed = backend.refresh_token(tokens["refresh_token"])
    assert refreshed["access_token"].startswith("ghu_")
    assert refreshed["refresh_token"] != tokens["refresh_token"]
    assert state.refresh_count("github") == 1
    assert ("POST", "http://testserver/sandbox/github/login/oauth/access_token") in transport.calls

    with pytest.raises(AuthCredentialError) as refused:
        backend.refresh_token(tokens["refresh_token"])  # rotated: the old one is dead
    assert refused.value.code == "reauthentication_required"

    data = backend.user_data(refreshed["access_token"])
    assert data["id"] == providers.github_id("ada@example.com")
    assert data["emails"][0]["verified"] is True
    assert data["email"] == "ada@example.com"


def test_real_google_backend_refreshes_reads_profile_and_revokes(client, transport):
    tokens = google_tokens(client)
    backend = load_backend(load_strategy(), "google-oauth2", redirect_uri=None)

    refreshed = backend.refresh_token(tokens["refresh_token"])
    assert refreshed["access_token"].startswith("ya29.")
    assert "refresh_token" not in refreshed
    assert state.refresh_count("google") == 1

    profile = backend.user_data(refreshed["access_token"])
    assert profile["sub"] == providers.google_sub("ada@example.com")
    assert backend.verified_email(profile) == ("ada@example.com", True)

    assert backend.revoke_token(refreshed["access_token"], profile["sub"]) is True
    assert not state.token_is_active("google", tokens["refresh_token"])


@pytest.mark.parametrize(
    ("mode", "error", "code"),
    [
        ("invalid_grant", AuthCredentialError, "reauthentication_required"),
        ("server_error", AuthProviderError, "unavailable"),
        ("rate_limited", AuthProviderError, "rate_limited"),
    ],
)
@pytest.mark.parametrize("provider", ["google-oauth2", "github"])
def test_real_backends_classify_failure_modes(client, transport, provider, mode, error, code):
    tokens = google_tokens(client) if provider == "google-oauth2" else github_tokens(client)
    state.set_failure_mode(provider, mode)
    backend = load_backend(load_strategy(), provider, redirect_uri=None)
    with pytest.raises(error) as raised:
        backend.refresh_token(tokens["refresh_token"])
    assert raised.value.code == code
    if mode == "rate_limited":
        assert raised.value.retry_after == "30"
    assert state.refresh_count(provider) == 1
    assert state.refresh_count(provider, successful=True) == 0


def test_slow_mode_times_the_real_backend_out(client, transport, settings):
    tokens = google_tokens(client)
    state.set_failure_mode("google", "slow")
    settings.SANDBOX_SLOW_SECONDS = 0.3
    settings.SOCIAL_AUTH_REQUESTS_TIMEOUT = 0.1
    backend = load_backend(load_strategy(), "google-oauth2", redirect_uri=None)
    with pytest.raises(AuthProviderError) as raised:
        backend.refresh_token(tokens["refresh_token"])
    assert raised.value.code == "timeout"
    assert state.refresh_count("google") == 1
