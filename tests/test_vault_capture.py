"""Capture: a sign-in or link puts the tokens in the vault, encrypted, and nowhere else."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.apps import apps
from django.core import serializers
from django.http import HttpResponse
from django.test import override_settings
from django.utils import timezone
from social_core.pipeline.partial import partial
from social_django.models import Partial, UserSocialAuth

import vault
from accounts.models import User
from sandbox import state
from sandbox.state import token_is_active
from vault.capture import capture_tokens
from vault.models import TokenSet

from .flows import round_trip, sign_in
from .vault_support import expire, stored_tokens

pytestmark = pytest.mark.django_db

SECRET_KEYS = {"access_token", "refresh_token", "id_token"}


def _database_dump() -> str:
    """Every row of every table, as text: what a stolen database backup would show."""
    return "".join(serializers.serialize("json", model.objects.all()) for model in apps.get_models())


def test_github_sign_in_stores_encrypted_tokens_with_absolute_expiry(client, settings):
    before = timezone.now()
    sign_in(client, "github", email="alice@example.com")
    identity = UserSocialAuth.objects.get()
    token_set = TokenSet.objects.get(identity=identity)
    access, refresh = stored_tokens(token_set)
    assert access.startswith("ghu_") and refresh.startswith("ghr_")
    assert token_is_active("github", access) and token_is_active("github", refresh)
    assert token_set.access_token_encrypted.startswith("v1.test-2.")
    assert token_set.owner_id == identity.user_id
    assert token_set.token_type == "bearer"
    ttl = settings.SANDBOX_TOKEN_TTL
    assert (
        before + timedelta(seconds=ttl - 5) <= token_set.expires_at <= timezone.now() + timedelta(seconds=ttl)
    )
    # GitHub App tokens list no scopes (scope=""), so the requested ones are shown, flagged as such.
    assert token_set.scopes == ["read:user", "user:email"] and token_set.scopes_reported is False

    dump = _database_dump()
    assert access not in dump and refresh not in dump
    assert not SECRET_KEYS & set(identity.extra_data)
    assert access not in json.dumps(identity.extra_data)


def test_granted_scopes_are_what_google_granted_not_what_was_asked(client):
    sign_in(client, "google-oauth2", email="alice@example.com", scopes=["openid", "email"])
    token_set = TokenSet.objects.get()
    assert token_set.scopes == ["openid", "https://www.googleapis.com/auth/userinfo.email"]
    assert token_set.scopes_reported is True
    assert token_set.has_refresh_token
    user = User.objects.get()
    with pytest.raises(vault.InsufficientScope) as caught:
        vault.get_access_token(user, "google-oauth2", scopes=["email", "profile"])
    assert caught.value.missing == ("profile",)
    assert caught.value.authorize_url.endswith("/settings/connections/?connect=google-oauth2&scope=profile")
    # "email" is granted under Google's long name; asking for it needs nothing more.
    assert vault.get_access_token(user, "google-oauth2", scopes=["email"]).access_token


def test_insufficient_scope_link_grants_the_missing_scope_incrementally(client):
    sign_in(client, "google-oauth2", email="alice@example.com", scopes=["openid", "email"])
    user = User.objects.get()
    with pytest.raises(vault.InsufficientScope) as caught:
        vault.get_access_token(user, "google-oauth2", scopes=["profile"])
    path = caught.value.authorize_url.split("127.0.0.1:8000", 1)[-1].split("testserver", 1)[-1]
    offer = client.get(path)
    assert b'data-connect-offer="google-oauth2"' in offer.content
    assert b"See your name and profile picture" in offer.content and b"(profile)" in offer.content
    # The offer's form posts the scope to begin; Google is asked for it on top of the configured ones.
    round_trip(
        client, "google-oauth2", email="alice@example.com", scope="profile", next="/settings/connections/"
    )
    token = vault.get_access_token(user, "google-oauth2", scopes=["profile"])
    assert "https://www.googleapis.com/auth/userinfo.profile" in token.scopes
    assert UserSocialAuth.objects.count() == 1


def test_a_response_without_refresh_token_keeps_the_stored_one(client, settings):
    sign_in(client, "google-oauth2", email="alice@example.com")
    token_set = TokenSet.objects.get()
    _, refresh = stored_tokens(token_set)
    # Without prompt=consent Google sends no new refresh token when the account signs in again.
    settings.SOCIAL_AUTH_GOOGLE_OAUTH2_AUTH_EXTRA_ARGUMENTS = {"access_type": "offline"}
    client.post("/logout/")
    sign_in(client, "google-oauth2", email="alice@example.com")
    access_after, refresh_after = stored_tokens(token_set)
    assert refresh_after == refresh
    assert token_is_active("google", access_after)
    # And the kept refresh token still renews access.
    expire(token_set)
    assert vault.get_access_token(User.objects.get(), "google-oauth2").access_token != access_after
    assert state.refresh_count("google") == 1


def test_capture_service_never_wipes_a_refresh_token_and_parses_comma_scopes(client):
    sign_in(client, "github", email="alice@example.com")
    identity = UserSocialAuth.objects.get()
    token_set = capture_tokens(
        identity=identity,
        response={
            "access_token": "gho_new",
            "refresh_token": None,
            "scope": "repo,read:org",
            "expires_in": 3600,
        },
    )
    access, refresh = stored_tokens(token_set)
    assert access == "gho_new" and refresh.startswith("ghr_")
    assert token_set.scopes == ["repo", "read:org"] and token_set.scopes_reported
    # GitHub's "repo" includes "public_repo".
    assert vault.get_access_token(identity.user, "github", scopes=["public_repo"]).access_token == "gho_new"


@partial
def pause_after_vault(strategy, backend, *args, **kwargs):
    """A partial-pipeline step (an interstitial page) placed after the vault's step."""
    return HttpResponse("paused")


def test_partial_pipeline_rows_hold_no_token(client, settings):
    pipeline = list(settings.SOCIAL_AUTH_PIPELINE)
    pipeline.insert(pipeline.index("vault.pipeline.store_tokens") + 1, f"{__name__}.pause_after_vault")
    with override_settings(SOCIAL_AUTH_PIPELINE=pipeline):
        result = round_trip(client, "github", email="alice@example.com")
    assert result.response.content == b"paused"
    saved = Partial.objects.get()
    access, refresh = stored_tokens(TokenSet.objects.get())
    text = json.dumps(saved.data)
    assert '"response"' in text  # the pipeline's arguments were saved...
    assert access not in text and refresh not in text  # ...without the tokens


def test_sign_in_again_updates_the_same_token_set(client):
    sign_in(client, "github", email="alice@example.com")
    first = TokenSet.objects.get()
    old_access, old_refresh = stored_tokens(first)
    client.post("/logout/")
    sign_in(client, "github", email="alice@example.com")
    assert TokenSet.objects.count() == 1
    new_access, new_refresh = stored_tokens(first)
    assert (new_access, new_refresh) != (old_access, old_refresh)
    user = User.objects.get()
    assert vault.get_access_token(user, "github").access_token == new_access
