"""Issue 14.2: granted scopes are never lost by signing in.

Real providers keep cumulative grants (GitHub's OAuth app token carries every scope the person
granted the app; Google does with ``include_granted_scopes=true``), and so does the sandbox: a
plain sign-in after approving ``repo`` for an agent leaves the agent its token.
"""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User
from activity.models import Activity
from sandbox import oauth
from sandbox.models import AccessToken as SandboxAccessToken
from sandbox.models import Grant
from vault import agents
from vault.activity_kinds import VaultKind
from vault.models import TokenSet

from .flows import sign_in

pytestmark = pytest.mark.django_db


def token(key: str, **body) -> tuple[int, dict]:
    response = Client().post(
        "/api/v1/token",
        json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    return response.status_code, response.json()


def test_a_plain_github_sign_in_keeps_the_repo_scope_an_agent_was_given():
    sign_in(Client(), "github", email="alice@example.com", scope=["repo"])
    alice = User.objects.get(email="alice@example.com")
    _row, key = agents.create_agent_key(user=alice, name="coder", providers=["github"])
    assert token(key, connection="github", scopes=["repo"])[0] == 200

    # Signed out: a new browser signs in with the default scopes only.
    again = sign_in(Client(), "github", email="alice@example.com")
    assert "repo" not in again.authorize_query.get("scope", "")
    assert "repo" in TokenSet.objects.get(provider="github").scopes
    status, answer = token(key, connection="github", scopes=["repo"])
    assert status == 200, answer
    assert "repo" in answer["scope"].split()
    # The sandbox's token really carries it, as GitHub's does for an OAuth app.
    assert "repo" in SandboxAccessToken.objects.order_by("-pk").first().scopes.split()


def test_the_sandbox_github_grant_accumulates_until_revoked():
    sign_in(Client(), "github", email="alice@example.com", scope=["repo"])
    sign_in(Client(), "github", email="alice@example.com")
    assert "repo" in SandboxAccessToken.objects.order_by("-pk").first().scopes.split()
    oauth.revoke_grant(Grant.objects.get(provider="github", revoked=False))
    sign_in(Client(), "github", email="alice@example.com")
    assert "repo" not in SandboxAccessToken.objects.order_by("-pk").first().scopes.split()


def test_a_google_sign_in_keeps_a_scope_granted_earlier():
    drive = "https://www.googleapis.com/auth/drive.readonly"
    sign_in(Client(), "google-oauth2", email="alice@example.com", scope=[drive])
    assert drive in TokenSet.objects.get(provider="google-oauth2").scopes
    again = sign_in(Client(), "google-oauth2", email="alice@example.com")
    assert again.authorize_query["include_granted_scopes"] == "true"
    assert drive in TokenSet.objects.get(provider="google-oauth2").scopes


def test_a_link_or_reconnect_asks_again_for_what_was_granted(client):
    sign_in(client, "github", email="alice@example.com", scope=["repo"])
    # Signed in, the person starts another round trip with GitHub (a "Reconnect" or a link).
    again = sign_in(client, "github", email="alice@example.com")
    assert "repo" in again.authorize_query["scope"].split(",") + again.authorize_query["scope"].split()
    assert "repo" in TokenSet.objects.get(provider="github").scopes


def test_a_narrowed_grant_is_told_in_activity_and_on_the_connections_page(client):
    drive = "https://www.googleapis.com/auth/drive.readonly"
    sign_in(client, "google-oauth2", email="alice@example.com", scope=[drive])
    # The person removed the site's access at Google; a later sign-in starts a new grant there.
    oauth.revoke_grant(Grant.objects.get(provider="google", revoked=False))
    sign_in(Client(), "google-oauth2", email="alice@example.com")
    assert drive not in TokenSet.objects.get(provider="google-oauth2").scopes

    told = "Google access narrowed: See your Google Drive files (drive.readonly) no longer granted"
    entry = Activity.objects.get(kind=VaultKind.SCOPES_NARROWED)
    assert entry.message == told
    assert entry.provider == "google-oauth2" and entry.data == {"lost": [drive]}
    page = client.get(reverse("accounts:connections")).content.decode()
    assert told in page
    assert told in client.get(reverse("accounts:activity")).content.decode()

    # Granting it again (a link asking for it) ends the warning; nothing new is recorded.
    sign_in(client, "google-oauth2", email="alice@example.com", scope=[drive])
    assert drive in TokenSet.objects.get(provider="google-oauth2").scopes
    assert "access narrowed" not in client.get(reverse("accounts:connections")).content.decode()
    assert Activity.objects.filter(kind=VaultKind.SCOPES_NARROWED).count() == 1


def test_a_sign_in_that_keeps_every_scope_records_no_narrowing(client):
    sign_in(client, "github", email="alice@example.com", scope=["repo"])
    sign_in(Client(), "github", email="alice@example.com")
    sign_in(client, "google-oauth2", email="alice@example.com")
    sign_in(Client(), "google-oauth2", email="alice@example.com")
    assert not Activity.objects.filter(kind=VaultKind.SCOPES_NARROWED).exists()


def test_with_two_accounts_at_a_provider_neither_grant_is_asked_of_the_other(client):
    sign_in(client, "github", email="alice@example.com", scope=["repo"])
    sign_in(client, "github", email="alice-work@example.com")
    assert TokenSet.objects.filter(provider="github").count() == 2
    # The site cannot tell which account the person will pick at GitHub.
    third = sign_in(client, "github", email="alice-work@example.com")
    assert "repo" not in third.authorize_query["scope"]
