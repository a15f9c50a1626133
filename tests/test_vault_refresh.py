"""Refresh: through the real backends against the sandbox, and every way a provider can fail."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.utils import timezone
from social_django.models import UserSocialAuth

import vault
from accounts.models import User
from activity.models import Activity
from sandbox import state
from sandbox.backends import SandboxGithubOAuth2, SandboxGoogleOAuth2
from sandbox.state import token_is_active
from vault import provider_calls
from vault import refresh as vault_refresh
from vault.activity_kinds import VaultKind
from vault.models import TokenSet

from .flows import round_trip, sign_in
from .vault_support import expire, http_status, let_pause_pass, patch_transport, stored_tokens, timing_out

pytestmark = pytest.mark.django_db

SANDBOX = {"github": "github", "google-oauth2": "google"}


@pytest.fixture(autouse=True)
def _no_retry_pause(monkeypatch):
    monkeypatch.setattr(provider_calls, "RETRY_BACKOFF", (0.0, 0.0))


@pytest.fixture(params=["github", "google-oauth2"])
def provider(request):
    return request.param


@pytest.fixture
def alice(client, provider):
    sign_in(client, provider, email="alice@example.com")
    return User.objects.get()


def _token_set(user, provider="github") -> TokenSet:
    return TokenSet.objects.get(identity__user=user, identity__provider=provider)


def test_fresh_token_is_handed_out_without_calling_the_provider(alice, provider):
    access, _ = stored_tokens(_token_set(alice, provider))
    token = vault.get_access_token(alice, provider)
    assert token.access_token == access
    assert 3500 < token.expires_in <= 3600
    assert token.connection == provider and token.account == UserSocialAuth.objects.get().pk
    assert access not in repr(token)
    assert state.refresh_count(SANDBOX[provider]) == 0


def test_expiring_token_is_refreshed_and_committed_before_it_is_returned(alice, provider):
    token_set = _token_set(alice, provider)
    old_access, old_refresh = stored_tokens(token_set)
    expire(token_set)
    token = vault.get_access_token(alice, provider)
    assert token.access_token != old_access
    assert token_is_active(SANDBOX[provider], token.access_token)
    new_access, new_refresh = stored_tokens(token_set)
    assert new_access == token.access_token
    token_set.refresh_from_db()
    assert token_set.refreshed_at is not None and token_set.version >= 2
    if provider == "github":
        # GitHub rotated the refresh token: the old one is dead, the new one is stored.
        assert new_refresh != old_refresh
        assert not token_is_active("github", old_refresh) and token_is_active("github", new_refresh)
    else:
        assert new_refresh == old_refresh  # Google's do not rotate
    # The stored (rotated) refresh token works for the next refresh too.
    expire(token_set)
    assert vault.get_access_token(alice, provider).access_token != token.access_token
    assert state.refresh_count(SANDBOX[provider], successful=True) == 2
    assert Activity.objects.filter(kind=VaultKind.TOKEN_REFRESHED).count() == 2


def test_min_ttl_asks_for_a_longer_lived_token(alice, provider):
    access, _ = stored_tokens(_token_set(alice, provider))
    assert vault.get_access_token(alice, provider, min_ttl=3000).access_token == access
    # Longer than the provider's tokens live: a fresh token is not refreshed for it (issue 12.3)...
    assert vault.get_access_token(alice, provider, min_ttl=4000).access_token == access
    assert state.refresh_count(SANDBOX[provider]) == 0
    # ...one that has aged is.
    expire(_token_set(alice, provider), seconds_ago=-3000)
    assert vault.get_access_token(alice, provider, min_ttl=4000).access_token != access
    assert state.refresh_count(SANDBOX[provider]) == 1


def test_invalid_grant_means_reconnect_and_no_retry_storm(client, alice, provider):
    token_set = _token_set(alice, provider)
    expire(token_set)
    state.set_failure_mode(SANDBOX[provider], "invalid_grant")
    with pytest.raises(vault.ReauthorizationRequired) as caught:
        vault.get_access_token(alice, provider)
    assert caught.value.code == "reauthorization_required" and caught.value.status == 403
    assert f"connect={provider}" in caught.value.authorize_url
    assert state.refresh_count(SANDBOX[provider]) == 1
    # Later calls fail fast from the stored status; the provider is not asked again.
    for _ in range(3):
        with pytest.raises(vault.ReauthorizationRequired):
            vault.get_access_token(alice, provider)
    assert state.refresh_count(SANDBOX[provider]) == 1
    token_set.refresh_from_db()
    assert token_set.status == TokenSet.Status.RECONNECT_REQUIRED
    assert UserSocialAuth.objects.filter(pk=token_set.identity_id).exists()  # still linked
    assert Activity.objects.filter(kind=VaultKind.REFRESH_FAILED).count() == 1
    page = client.get("/settings/connections/").content.decode()
    assert 'data-token-status="reconnect_required"' in page and "Reconnect " in page

    # Reconnecting the same account brings it back.
    state.set_failure_mode(SANDBOX[provider], "normal")
    round_trip(client, provider, email="alice@example.com")
    token_set.refresh_from_db()
    assert token_set.status == TokenSet.Status.ACTIVE
    assert vault.get_access_token(alice, provider).access_token == stored_tokens(token_set)[0]


@pytest.mark.parametrize(
    ("mode", "requests_made", "retry_after"), [("server_error", 3, 15), ("rate_limited", 1, 30)]
)
def test_outage_gives_provider_unavailable_and_disables_nothing(
    alice, provider, mode, requests_made, retry_after
):
    token_set = _token_set(alice, provider)
    _, refresh = stored_tokens(token_set)
    expire(token_set)
    state.set_failure_mode(SANDBOX[provider], mode)
    with pytest.raises(vault.ProviderUnavailable) as caught:
        vault.get_access_token(alice, provider)
    assert caught.value.code == "provider_unavailable" and caught.value.status == 503
    assert caught.value.retry_after == retry_after
    assert state.refresh_count(SANDBOX[provider]) == requests_made  # short, bounded retries
    # While the provider is paused, callers are answered at once instead of piling on.
    with pytest.raises(vault.ProviderUnavailable):
        vault.get_access_token(alice, provider)
    assert state.refresh_count(SANDBOX[provider]) == requests_made
    token_set.refresh_from_db()
    assert token_set.status == TokenSet.Status.ACTIVE and token_set.identity_id is not None
    assert stored_tokens(token_set)[1] == refresh and token_is_active(SANDBOX[provider], refresh)

    state.set_failure_mode(SANDBOX[provider], "normal")
    let_pause_pass(token_set)
    assert vault.get_access_token(alice, provider).access_token == stored_tokens(token_set)[0]


def test_slow_provider_times_out_into_provider_unavailable(alice, provider, settings, monkeypatch):
    settings.SANDBOX_SLOW_SECONDS = 0.15
    settings.SOCIAL_AUTH_REQUESTS_TIMEOUT = 0.05
    patch_transport(monkeypatch, when=lambda method, url: "token" in url, answer=timing_out)
    token_set = _token_set(alice, provider)
    expire(token_set)
    state.set_failure_mode(SANDBOX[provider], "slow")
    with pytest.raises(vault.ProviderUnavailable) as caught:
        vault.get_access_token(alice, provider)
    assert caught.value.retry_after == provider_calls.OUTAGE_RETRY_AFTER
    assert state.refresh_count(SANDBOX[provider]) == 3
    token_set.refresh_from_db()
    assert token_set.status == TokenSet.Status.ACTIVE and token_set.last_error_code == "timeout"


def test_rejected_client_credentials_are_a_staff_problem(alice, provider, monkeypatch, caplog):
    backend = {"github": SandboxGithubOAuth2, "google-oauth2": SandboxGoogleOAuth2}[provider]
    original = backend.get_key_and_secret
    monkeypatch.setattr(backend, "get_key_and_secret", lambda self: (original(self)[0], "not-the-secret"))
    token_set = _token_set(alice, provider)
    expire(token_set)
    with caplog.at_level(logging.ERROR, logger="vault"), pytest.raises(vault.ProviderMisconfigured) as caught:
        vault.get_access_token(alice, provider)
    assert caught.value.code == "provider_misconfigured"
    assert any("client credentials" in record.getMessage() for record in caplog.records)
    token_set.refresh_from_db()
    assert token_set.status == TokenSet.Status.ACTIVE  # the user's grant is fine
    assert token_set.last_error_code in ("incorrect_client_credentials", "invalid_client")
    failure = Activity.objects.get(kind=VaultKind.REFRESH_FAILED)
    assert failure.data["staff"] is True and "staff have been told" in failure.message


def test_connection_errors_are_retried_then_reported(alice, provider, monkeypatch):
    seen = patch_transport(
        monkeypatch, when=lambda method, url: "token" in url, answer=http_status(502, b"<html>")
    )
    token_set = _token_set(alice, provider)
    expire(token_set)
    with pytest.raises(vault.ProviderUnavailable):
        vault.get_access_token(alice, provider)
    assert len(seen) == 3


def test_expired_token_without_refresh_token_needs_reconnect(client, alice, provider):
    token_set = _token_set(alice, provider)
    TokenSet.objects.filter(pk=token_set.pk).update(refresh_token_encrypted="")
    expire(token_set)
    with pytest.raises(vault.ReauthorizationRequired):
        vault.get_access_token(alice, provider)
    token_set.refresh_from_db()
    assert token_set.status == TokenSet.Status.RECONNECT_REQUIRED
    assert state.refresh_count(SANDBOX[provider]) == 0


def test_refresh_expiring_for_cron(alice, provider):
    token_set = _token_set(alice, provider)
    expire(token_set)
    report = vault_refresh.refresh_expiring(within=600, dry_run=True)
    assert report.due == 1 and state.refresh_count(SANDBOX[provider]) == 0
    report = vault_refresh.refresh_expiring(within=600)
    assert (report.due, report.refreshed) == (1, 1)
    assert vault_refresh.refresh_expiring(within=600).due == 0


@pytest.fixture
def lease_only(monkeypatch):
    """The SQLite strategy, on whichever database runs the tests."""
    monkeypatch.setattr(vault_refresh, "uses_row_lock", lambda: False)


@pytest.mark.parametrize("provider", ["github"])
def test_a_crashed_holders_expired_lease_is_taken_over(alice, lease_only):
    token_set = _token_set(alice)
    expire(token_set)
    TokenSet.objects.filter(pk=token_set.pk).update(
        lease_id="crashed-process", lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    token = vault.get_access_token(alice, "github")
    assert token.access_token == stored_tokens(token_set)[0]
    assert token.token_type == "Bearer"
    token_set.refresh_from_db()
    assert token_set.lease_id == "" and state.refresh_count("github") == 1


@pytest.mark.parametrize("provider", ["github"])
def test_a_lease_lost_during_the_provider_call_writes_nothing(alice, lease_only, monkeypatch):
    token_set = _token_set(alice)
    expire(token_set)
    before = stored_tokens(token_set)
    version_before = TokenSet.objects.get(pk=token_set.pk).version
    original = vault_refresh.call_provider

    def slow_call(token_set_arg, ctx):
        outcome = original(token_set_arg, ctx)
        # Meanwhile the lease ran out and another process claimed it.
        TokenSet.objects.filter(pk=token_set.pk).update(lease_id="someone-else")
        return outcome

    monkeypatch.setattr(vault_refresh, "call_provider", slow_call)
    with pytest.raises(vault.ProviderUnavailable) as caught:
        vault.get_access_token(alice, "github")
    assert caught.value.retry_after == 1
    assert stored_tokens(token_set) == before
    token_set.refresh_from_db()
    # Only the claim itself bumped the version; the provider's answer was not written.
    assert token_set.lease_id == "someone-else"
    assert token_set.version == version_before + 1
