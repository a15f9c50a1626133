"""Issue 12.2 (and its hot-path family): a token is never more powerful than the key holding it.

A key limited to some scopes gets a token narrowed to them where the provider can narrow one
(Google, through a refresh grant naming the scopes), is refused with a reason where it cannot
(GitHub), unless its person allowed it the whole grant. The hot path and ``get_access_token``
apply the one rule (``vault.access.enforce_scope_limit``).
"""

from __future__ import annotations

import json

import pytest
from django.test import Client

import vault
from accounts.models import User
from activity.models import Activity
from sandbox import state as sandbox_state
from sandbox.models import AccessToken as SandboxAccessToken
from vault import access as vault_access
from vault import agents, errors
from vault.activity_kinds import VaultKind
from vault.models import AgentKey, TokenSet
from vault.scopes import ScopeLimit

from .flows import sign_in
from .vault_support import stored_tokens

pytestmark = pytest.mark.django_db

GOOGLE_EMAIL = "https://www.googleapis.com/auth/userinfo.email"


def token(key: str, **body) -> tuple[int, dict]:
    response = Client().post(
        "/api/v1/token",
        json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    return response.status_code, response.json()


def issued() -> list[Activity]:
    return list(Activity.objects.filter(kind=VaultKind.TOKEN_ISSUED).order_by("pk"))


@pytest.fixture
def github_alice(client) -> User:
    sign_in(client, "github", email="alice@example.com", scope=["repo"])
    user = User.objects.get(email="alice@example.com")
    assert "repo" in TokenSet.objects.get(provider="github").scopes
    return user


@pytest.fixture
def google_alice(client) -> User:
    sign_in(client, "google-oauth2", email="alice@example.com")
    return User.objects.get(email="alice@example.com")


def test_a_github_key_limited_below_the_grant_is_refused_and_says_why(github_alice):
    _row, key = agents.create_agent_key(
        user=github_alice, name="reader", providers=["github"], scopes={"github": ["read:user"]}
    )
    for body in ({"connection": "github"}, {"connection": "github", "scopes": ["read:user"]}):
        status, answer = token(key, **body)
        assert (status, answer["error"]) == (403, "access_denied"), answer
        assert "access_token" not in answer
        assert answer["reason"] == "grant_exceeds_key_scopes"
        assert "repo" in answer["scopes_beyond_limit"] and answer["allowed_scopes"] == ["read:user"]
        assert "cannot narrow" in answer["error_description"]
        assert "whole grant" in answer["error_description"]
    assert issued() == []
    assert sandbox_state.refresh_count("github") == 0


def test_the_python_api_applies_the_same_limit(github_alice):
    limit = ScopeLimit(scopes=("read:user",))
    with pytest.raises(errors.ScopeLimitExceeded) as caught:
        vault.get_access_token(github_alice, "github", limit=limit)
    assert (caught.value.code, caught.value.status) == ("access_denied", 403)
    # Without a limit (server-side code) the whole grant, as before.
    assert "repo" in vault.get_access_token(github_alice, "github").scopes


def test_a_limit_that_covers_the_grant_gets_the_stored_token(github_alice):
    _row, key = agents.create_agent_key(
        user=github_alice,
        name="all of it",
        providers=["github"],
        scopes={"github": ["user", "repo"]},  # "user" covers read:user and user:email
    )
    status, answer = token(key, connection="github")
    assert status == 200 and answer["access_token"] == stored_tokens(TokenSet.objects.get())[0]


def test_the_person_can_allow_a_key_the_whole_grant_on_the_agents_page(client, github_alice):
    created = client.post(
        "/settings/agents/",
        {
            "name": "trusted",
            "providers": ["github"],
            "expires_in_days": "30",
            "scopes_github": "read:user",
            "whole_grant": "on",
        },
        follow=True,
    )
    assert created.status_code == 200
    html = created.content.decode()
    key = html.split('data-agent-key="', 1)[1].split('"', 1)[0]
    row = AgentKey.objects.get()
    assert row.whole_grant and row.scopes == {"github": ["read:user"]}
    assert "may receive the whole grant" in client.get("/settings/agents/").content.decode()
    status, answer = token(key, connection="github")
    assert status == 200 and "repo" in answer["scope"]
    # A key created without the box ticked does not get it.
    client.post(
        "/settings/agents/",
        {"name": "cautious", "providers": ["github"], "expires_in_days": "30", "scopes_github": "read:user"},
    )
    assert not AgentKey.objects.get(name="cautious").whole_grant


def test_a_google_key_gets_a_narrowed_token_and_the_stored_grant_is_kept(google_alice):
    token_set = TokenSet.objects.get()
    stored_before = stored_tokens(token_set)
    scopes_before = list(token_set.scopes)
    assert GOOGLE_EMAIL in scopes_before and len(scopes_before) > 1
    _row, key = agents.create_agent_key(
        user=google_alice, name="mail", providers=["google-oauth2"], scopes={"google-oauth2": ["email"]}
    )
    status, answer = token(key, connection="google-oauth2")
    assert status == 200, answer
    assert answer["scope"] == GOOGLE_EMAIL
    assert answer["access_token"] != stored_before[0]
    assert 3500 < answer["expires_in"] <= 3600
    # Google (the sandbox) really issued a token with only that scope.
    narrowed = SandboxAccessToken.objects.get(scopes=GOOGLE_EMAIL)
    assert sandbox_state.token_is_active("google", answer["access_token"])
    assert narrowed.grant.scopes.split() == scopes_before  # narrowed, not a new grant
    # The stored token set still holds the whole grant and the same tokens.
    token_set.refresh_from_db()
    assert stored_tokens(token_set) == stored_before and token_set.scopes == scopes_before
    assert issued()[-1].data["scopes"] == [GOOGLE_EMAIL]
    # A server-side caller without a limit still gets the stored, whole token.
    assert vault.get_access_token(google_alice, "google-oauth2").access_token == stored_before[0]


def test_the_sandbox_google_refuses_to_widen_on_refresh(google_alice, settings):
    _access, refresh = stored_tokens(TokenSet.objects.get())
    response = Client().post(
        "/sandbox/google/token",
        {
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "client_id": settings.SOCIAL_AUTH_GOOGLE_OAUTH2_KEY,
            "client_secret": settings.SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET,
            "scope": "https://www.googleapis.com/auth/drive",
        },
    )
    assert (response.status_code, response.json()["error"]) == (400, "invalid_scope")


def test_the_hot_path_never_hands_out_a_token_beyond_the_limit(github_alice):
    """``stored_access_token`` (the agent API's fast path) answers None, so the long way raises."""
    identity = vault_access._resolve_identity(
        user=github_alice, connection="github", account=None, requested=[]
    )
    assert (
        vault_access.stored_access_token(
            identity, connection="github", requested=[], min_ttl=60, limit=ScopeLimit(("read:user",))
        )
        is None
    )
    assert (
        vault_access.stored_access_token(
            identity,
            connection="github",
            requested=[],
            min_ttl=60,
            limit=ScopeLimit(("read:user",), whole_grant=True),
        )
        is not None
    )
