"""The Python API's contract: which account, typed errors with codes and fix-it URLs, and the page."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import Client
from social_django.models import UserSocialAuth

import vault
from accounts.models import User
from accounts.templatetags.plain_words import when_text
from vault import access as vault_access
from vault import errors
from vault.models import TokenSet
from vault.status import connections_extras

from .flows import round_trip, sign_in
from .vault_support import expire, stored_tokens

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(client):
    sign_in(client, "github", email="alice@example.com")
    round_trip(client, "github", email="alice-work@example.com")
    return User.objects.get()


def _identity(email):
    return UserSocialAuth.objects.get(details__email=email)


def test_package_exports_the_api_lazily():
    assert vault.get_access_token is vault_access.get_access_token
    assert issubclass(vault.ConnectionRequired, vault.TokenVaultError)
    with pytest.raises(AttributeError):
        vault.no_such_name


def test_default_account_is_used_unless_one_is_picked(client, alice):
    first, second = _identity("alice@example.com"), _identity("alice-work@example.com")
    first_access, _ = stored_tokens(first.token_set)
    second_access, _ = stored_tokens(second.token_set)
    assert vault.get_access_token(alice, "github").access_token == first_access
    picked = vault.get_access_token(alice, "github", account=second.pk)
    assert (picked.access_token, picked.account) == (second_access, second.pk)
    assert vault.get_access_token(alice, "github", account=str(second.pk)).account == second.pk

    # The user makes the second account the default on the connections page.
    page = client.get("/settings/connections/").content.decode()
    assert f'action="/settings/connections/{second.pk}/default/"' in page
    client.post(f"/settings/connections/{second.pk}/default/")
    assert vault.get_access_token(alice, "github").account == second.pk


def test_someone_elses_account_id_is_answered_like_an_unknown_one(alice):
    sign_in(Client(), "github", email="mallory@example.com")
    mallory_identity = UserSocialAuth.objects.get(details__email="mallory@example.com")
    answers = []
    for account in (mallory_identity.pk, 999_999):
        with pytest.raises(vault.ConnectionRequired) as caught:
            vault.get_access_token(alice, "github", account=account)
        answers.append((caught.value.code, caught.value.message, caught.value.authorize_url))
    assert answers[0] == answers[1]
    # An account of another provider is not a GitHub account either.
    with pytest.raises(vault.ConnectionRequired):
        vault.get_access_token(alice, "google-oauth2", account=_identity("alice@example.com").pk)


def test_connection_required_points_at_the_connect_offer(client, alice, settings):
    with pytest.raises(vault.ConnectionRequired) as caught:
        vault.get_access_token(alice, "google-oauth2", scopes=["openid", "email"])
    error = caught.value
    assert (error.code, error.status) == ("connection_required", 403)
    assert error.authorize_url == (
        f"{settings.SITE_URL}/settings/connections/?connect=google-oauth2&scope=openid&scope=email"
    )
    assert error.as_dict()["error"] == "connection_required"
    offer = client.get("/settings/connections/?connect=google-oauth2&scope=openid&scope=email")
    assert b'data-connect-offer="google-oauth2"' in offer.content


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"connection": "myspace"}, "Unknown connection"),
        ({"connection": ""}, "Unknown connection"),
        ({"connection": "github", "min_ttl": -1}, "min_ttl"),
        ({"connection": "github", "min_ttl": "60"}, "min_ttl"),
        ({"connection": "github", "account": "abc"}, "account"),
        ({"connection": "github", "account": True}, "account"),
    ],
)
def test_bad_arguments_are_invalid_requests_and_change_nothing(alice, kwargs, message):
    before = list(TokenSet.objects.values_list("version", flat=True))
    connection = kwargs.pop("connection")
    with pytest.raises(vault.InvalidRequest, match=message) as caught:
        vault.get_access_token(alice, connection, **kwargs)
    assert caught.value.status == 400
    assert list(TokenSet.objects.values_list("version", flat=True)) == before


def test_anonymous_callers_are_refused():
    with pytest.raises(vault.InvalidRequest):
        vault.get_access_token(AnonymousUser(), "github")


def test_scopes_may_be_a_string_or_a_list(alice):
    assert vault.get_access_token(alice, "github", scopes="read:user user:email").scopes == (
        "read:user",
        "user:email",
    )
    with pytest.raises(vault.InsufficientScope) as caught:
        vault.get_access_token(alice, "github", scopes=["repo"])
    body = caught.value.as_dict()
    assert body["required_scopes"] == ["repo"] and body["authorize_url"].endswith("connect=github&scope=repo")


def test_errors_carry_code_status_message_and_url():
    for cls, code, status in [
        (errors.ConnectionRequired, "connection_required", 403),
        (errors.InsufficientScope, "insufficient_scope", 403),
        (errors.ReauthorizationRequired, "reauthorization_required", 403),
        (errors.ProviderUnavailable, "provider_unavailable", 503),
        (errors.ProviderMisconfigured, "provider_misconfigured", 503),
        (errors.InvalidRequest, "invalid_request", 400),
        (errors.VaultKeyError, "vault_unavailable", 503),
    ]:
        error = cls(connection="github")
        assert (error.code, error.status) == (code, status)
        assert error.message and isinstance(error, vault.TokenVaultError)
    assert errors.ProviderUnavailable(retry_after=0).retry_after == 1


def test_connections_page_shows_token_status_in_one_query(client, alice, django_assert_num_queries):
    with django_assert_num_queries(1):
        extras = connections_extras(alice)
    assert set(extras) == set(alice.social_auth.values_list("pk", flat=True))
    first = _identity("alice@example.com")
    page = client.get("/settings/connections/").content.decode()
    assert page.count('data-token-status="active"') == 2
    assert "Refreshed</dt>\n<dd data-token-refreshed>never" in page
    assert 'title="read:user">See your GitHub profile' in page and "did not confirm what it granted" in page

    expire(first.token_set)
    vault.get_access_token(alice, "github")
    first.token_set.refresh_from_db()
    page = client.get("/settings/connections/").content.decode()
    assert when_text(first.token_set.refreshed_at) in page

    TokenSet.objects.filter(pk=first.token_set.pk).update(status=TokenSet.Status.RECONNECT_REQUIRED)
    page = client.get("/settings/connections/").content.decode()
    assert 'data-token-status="reconnect_required"' in page
    assert page.count("Reconnect GitHub") == 1


def test_identity_without_tokens_offers_reconnect(client, alice):
    TokenSet.objects.filter(identity=_identity("alice-work@example.com")).delete()
    page = client.get("/settings/connections/").content.decode()
    assert 'data-token-status="missing"' in page and "Reconnect GitHub" in page
    with pytest.raises(vault.ReauthorizationRequired):
        vault.get_access_token(alice, "github", account=_identity("alice-work@example.com").pk)
