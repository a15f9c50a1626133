"""Issue 14.2: a refresh that answers fewer scopes than stored narrows the grant, and the person is told.

Real providers do this when a person removes one scope at the provider or an admin policy changes; the
token response of the refresh then names fewer scopes (RFC 6749 5.1). The vault stores what it was
given, and says so in activity and on the connections page, as it does for a narrowing sign-in.
"""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

import vault
from accounts.models import User
from activity.models import Activity
from vault import agents, provider_calls
from vault.activity_kinds import VaultKind
from vault.models import TokenSet

from .flows import sign_in
from .vault_support import expire, patch_transport

pytestmark = pytest.mark.django_db

DRIVE = "https://www.googleapis.com/auth/drive.readonly"


@pytest.fixture(autouse=True)
def _no_retry_pause(monkeypatch):
    monkeypatch.setattr(provider_calls, "RETRY_BACKOFF", (0.0, 0.0))


def _drop_scope_from_refresh_answers(monkeypatch, dropped: str) -> list:
    """The provider's real refresh answer, with one scope fewer in its ``scope`` field."""

    def answer(adapter, request, *, original, timeout=None, **kwargs):
        response = original(adapter, request, timeout=timeout)
        body = json.loads(response.content)
        body["scope"] = " ".join(s for s in body["scope"].split() if s != dropped)
        response._content = json.dumps(body).encode()
        return response

    return patch_transport(
        monkeypatch,
        when=lambda method, url: method == "POST" and url.endswith("/sandbox/google/token"),
        answer=answer,
    )


def test_a_refresh_that_drops_a_scope_is_told_and_the_agent_is_refused_that_scope(client, monkeypatch):
    sign_in(client, "google-oauth2", email="alice@example.com", scope=[DRIVE])
    alice = User.objects.get()
    token_set = TokenSet.objects.get(provider="google-oauth2")
    assert DRIVE in token_set.scopes
    seen = _drop_scope_from_refresh_answers(monkeypatch, DRIVE)

    expire(token_set)
    vault.get_access_token(alice, "google-oauth2")
    assert seen, "the refresh reached the provider"

    token_set.refresh_from_db()
    assert DRIVE not in token_set.scopes
    entry = Activity.objects.get(kind=VaultKind.SCOPES_NARROWED)
    assert entry.data["lost"] == [DRIVE] and entry.provider == "google-oauth2"
    assert entry.identity_id == token_set.identity_id
    page = client.get(reverse("accounts:connections")).content.decode()
    assert "access narrowed" in page and "drive" in page.lower()

    # An agent asking for Drive now gets a clear insufficient_scope, not a token without it.
    _, key = agents.create_agent_key(
        user=alice, name="bot", providers=["google-oauth2"], scopes={"google-oauth2": [DRIVE]}
    )
    response = Client().post(
        "/api/v1/token",
        json.dumps({"connection": "google-oauth2", "scopes": [DRIVE]}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"


def test_a_refresh_that_keeps_every_scope_records_no_narrowing(client):
    sign_in(client, "github", email="alice@example.com", scope=["repo"])
    alice = User.objects.get()
    expire(TokenSet.objects.get(provider="github"))
    vault.get_access_token(alice, "github")
    assert Activity.objects.filter(kind=VaultKind.TOKEN_REFRESHED).count() == 1
    assert not Activity.objects.filter(kind=VaultKind.SCOPES_NARROWED).exists()


def test_renaming_an_agent_key_is_recorded_in_activity(client):
    sign_in(client, "github", email="alice@example.com")
    alice = User.objects.get()
    row, _ = agents.create_agent_key(user=alice, name="old name", providers=["github"])
    agents.rename_agent_key(user=alice, key_id=row.pk, name="new name")
    entry = Activity.objects.get(kind=VaultKind.AGENT_KEY_RENAMED)
    assert entry.agent_key_id == row.pk and entry.data == {"from": "old name", "to": "new name"}
    assert "new name" in client.get(reverse("accounts:activity")).content.decode()
