"""Revocation: disconnecting revokes at the provider; a failure never blocks it and is retried."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from social_django.models import UserSocialAuth

from accounts.models import User
from activity.models import Activity
from sandbox.models import AccessToken as SandboxAccessToken
from sandbox.state import token_is_active
from vault import revocation, revokers
from vault.activity_kinds import VaultKind
from vault.models import TokenSet

from .flows import messages_on, round_trip, sign_in
from .sandbox_support import DjangoTestserverAdapter, install_testserver_transport
from .vault_support import (
    connection_error,
    expire,
    http_status,
    let_pause_pass,
    patch_transport,
    stored_tokens,
)

pytestmark = pytest.mark.django_db

SANDBOX = {"github": "github", "google-oauth2": "google"}
REVOKE_URL = {"github": "/grant", "google-oauth2": "/google/revoke"}


@pytest.fixture
def alice(client):
    sign_in(client, "github", email="alice@example.com")
    round_trip(client, "google-oauth2", email="alice@example.com")
    return User.objects.get()


def _disconnect(client, identity) -> None:
    response = client.post(f"/settings/connections/{identity.pk}/disconnect/")
    assert response.status_code == 302


@pytest.mark.parametrize("provider", ["github", "google-oauth2"])
def test_disconnect_revokes_at_the_provider_then_erases_the_tokens(
    client, alice, provider, django_capture_on_commit_callbacks
):
    identity = UserSocialAuth.objects.get(provider=provider)
    access, refresh = stored_tokens(TokenSet.objects.get(identity=identity))
    with django_capture_on_commit_callbacks(execute=True):
        _disconnect(client, identity)
    assert not UserSocialAuth.objects.filter(pk=identity.pk).exists()
    assert not token_is_active(SANDBOX[provider], access)
    assert not token_is_active(SANDBOX[provider], refresh)
    assert not TokenSet.objects.filter(provider=provider).exists()
    revoked = Activity.objects.get(kind=VaultKind.REVOKED)
    assert revoked.user == alice and revoked.provider == provider
    # The other identity's tokens are untouched.
    other = TokenSet.objects.get()
    assert token_is_active(SANDBOX[other.provider], stored_tokens(other)[0])


def test_google_revocation_posts_the_token_in_the_body_never_the_url(
    client, alice, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    original = DjangoTestserverAdapter.send

    def spy(self, request, **kwargs):
        sent.append((request.method, request.url, request.body))
        return original(self, request, **kwargs)

    monkeypatch.setattr(DjangoTestserverAdapter, "send", spy)
    identity = UserSocialAuth.objects.get(provider="google-oauth2")
    _, refresh = stored_tokens(TokenSet.objects.get(identity=identity))
    with django_capture_on_commit_callbacks(execute=True):
        _disconnect(client, identity)
    method, url, body = next(call for call in sent if "revoke" in call[1])
    assert method == "POST" and refresh not in url
    assert "token=" in (body.decode() if isinstance(body, bytes) else body)


@pytest.mark.parametrize("failure", [http_status(503), connection_error])
def test_failed_revocation_never_blocks_the_disconnect_and_is_retried_by_vault_refresh(
    client, alice, monkeypatch, django_capture_on_commit_callbacks, failure
):
    identity = UserSocialAuth.objects.get(provider="github")
    access, refresh = stored_tokens(TokenSet.objects.get(identity=identity))
    seen = patch_transport(monkeypatch, when=lambda method, url: REVOKE_URL["github"] in url, answer=failure)
    with django_capture_on_commit_callbacks(execute=True):
        _disconnect(client, identity)
    assert len(seen) == 1
    assert not UserSocialAuth.objects.filter(pk=identity.pk).exists()
    assert any("Removed your GitHub account" in message for message in messages_on(client))
    pending = TokenSet.objects.get(provider="github")
    assert pending.identity_id is None and pending.status == TokenSet.Status.REVOKE_PENDING
    assert pending.revoke_attempts == 1 and pending.retry_not_before is not None
    assert Activity.objects.filter(kind=VaultKind.REVOKE_FAILED).count() == 1
    assert token_is_active("github", access)

    # Before its pause is over, cron leaves it alone; afterwards it revokes.
    out = io.StringIO()
    call_command("vault_refresh", stdout=out)
    assert "Revocations: 0 due" in out.getvalue() and len(seen) == 1
    monkeypatch.undo()
    install_testserver_transport(monkeypatch)
    let_pause_pass(pending)
    out = io.StringIO()
    call_command("vault_refresh", stdout=out)
    assert "Revocations: 1 due, 1 done" in out.getvalue()
    assert not TokenSet.objects.filter(provider="github").exists()
    assert not token_is_active("github", access) and not token_is_active("github", refresh)
    assert Activity.objects.filter(kind=VaultKind.REVOKED).count() == 1


def test_revocation_gives_up_after_its_attempts(
    client, alice, monkeypatch, django_capture_on_commit_callbacks
):
    patch_transport(monkeypatch, when=lambda method, url: "/grant" in url, answer=http_status(500))
    monkeypatch.setattr(revocation, "MAX_ATTEMPTS", 2)
    with django_capture_on_commit_callbacks(execute=True):
        _disconnect(client, UserSocialAuth.objects.get(provider="github"))
    pending = TokenSet.objects.get(provider="github")
    let_pause_pass(pending)
    assert revocation.retry_pending().gave_up == 1
    assert not TokenSet.objects.filter(provider="github").exists()
    assert Activity.objects.filter(kind=VaultKind.REVOKE_FAILED, data__gave_up=True).count() == 1


@pytest.mark.parametrize("provider_answer", ["fails", "fails_for_the_last_time", "revokes"])
def test_an_attempt_whose_lease_was_taken_over_writes_nothing_when_it_ends(
    client, alice, monkeypatch, django_capture_on_commit_callbacks, provider_answer
):
    """A worker so slow that its lease lapsed, and another worker took the row: when its provider
    call ends, it neither notes a failure on the row nor erases it, nor records an outcome (the
    other worker owns the row and records its own)."""
    patch_transport(monkeypatch, when=lambda method, url: "/grant" in url, answer=http_status(503))
    with django_capture_on_commit_callbacks(execute=True):
        _disconnect(client, UserSocialAuth.objects.get(provider="github"))
    pending = TokenSet.objects.get(provider="github")
    let_pause_pass(pending)
    pending.refresh_from_db()
    monkeypatch.undo()
    install_testserver_transport(monkeypatch)
    if provider_answer == "fails_for_the_last_time":
        monkeypatch.setattr(revocation, "MAX_ATTEMPTS", pending.revoke_attempts + 1)

    def taken_over_then(adapter, request, *, timeout=None, original=None):
        TokenSet.objects.filter(pk=pending.pk).update(
            lease_id="another-worker", lease_expires_at=timezone.now() + timedelta(seconds=60)
        )
        if provider_answer != "revokes":
            return http_status(503)(adapter, request)
        return original(adapter, request, timeout=timeout)

    patch_transport(monkeypatch, when=lambda method, url: "/grant" in url, answer=taken_over_then)
    records = Activity.objects.count()
    assert revocation.attempt_revocation(token_set_id=pending.pk) == "busy"
    assert Activity.objects.count() == records
    row = TokenSet.objects.get(pk=pending.pk)  # still there: the first worker's delete matched nothing
    assert row.lease_id == "another-worker"
    assert (row.revoke_attempts, row.retry_not_before, row.last_error_at) == (
        pending.revoke_attempts,
        pending.retry_not_before,
        pending.last_error_at,
    )


def test_expired_github_token_still_revokes_the_grant(client, alice, django_capture_on_commit_callbacks):
    token_set = TokenSet.objects.get(provider="github")
    access, refresh = stored_tokens(token_set)
    expire(token_set, seconds_ago=100)
    SandboxAccessToken.objects.update(expires_at=timezone.now() - timedelta(seconds=100))
    assert not token_is_active("github", access)  # expired at GitHub too, yet it identifies the grant
    with django_capture_on_commit_callbacks(execute=True):
        _disconnect(client, token_set.identity)
    assert not token_is_active("github", refresh)
    assert Activity.objects.get(kind=VaultKind.REVOKED).data["outcome"] == "revoked"


def test_deleting_a_user_revokes_their_tokens_too(alice, django_capture_on_commit_callbacks):
    secrets = [stored_tokens(token_set) for token_set in TokenSet.objects.all()]
    with django_capture_on_commit_callbacks(execute=True):
        alice.delete()
    assert not TokenSet.objects.exists()
    for provider, (access, refresh) in zip(("github", "google"), secrets, strict=True):
        assert not token_is_active(provider, refresh)
        assert not token_is_active(provider, access)


def test_relinked_account_keeps_its_grant(client, alice, monkeypatch, django_capture_on_commit_callbacks):
    identity = UserSocialAuth.objects.get(provider="github")
    patch_transport(monkeypatch, when=lambda method, url: "/grant" in url, answer=http_status(503))
    with django_capture_on_commit_callbacks(execute=True):
        _disconnect(client, identity)
    monkeypatch.undo()
    install_testserver_transport(monkeypatch)
    round_trip(client, "github", email="alice@example.com")  # the same GitHub account, linked again
    new_access, _ = stored_tokens(TokenSet.objects.get(identity__provider="github"))
    pending = TokenSet.objects.get(provider="github", identity__isnull=True)
    let_pause_pass(pending)
    revocation.retry_pending()
    # Revoking the old tokens would end the grant the new link shares: it is left alone.
    assert token_is_active("github", new_access)
    assert not TokenSet.objects.filter(identity__isnull=True).exists()


class _FakeOidcBackend:
    """Just enough of an OIDC backend for RFC 7009: records what would be sent."""

    def __init__(self, endpoint, basic=True, refuse=()):
        self.endpoint, self.basic, self.refuse, self.sent = endpoint, basic, refuse, []

    def revoke_token_url(self, token, uid):
        if self.endpoint is None:
            from social_core.exceptions import AuthResponseError

            raise AuthResponseError(self, claim="revocation_endpoint", code="missing_claim")
        return self.endpoint

    def get_key_and_secret(self):
        return "client", "secret"

    def use_basic_auth(self):
        return self.basic

    def request(self, url, *, method, data, auth, stage):
        self.sent.append((method, url, dict(data), auth))
        if data["token_type_hint"] in self.refuse:
            from social_core.exceptions import AuthProviderError

            raise AuthProviderError(self, provider_code="unsupported_token_type", status_code=400)


def test_rfc7009_revokes_the_refresh_token_first_then_the_access_token():
    backend = _FakeOidcBackend("https://idp.example/revoke", refuse=("access_token",))
    result = revokers.revoke_rfc7009(backend, refresh_token="r-1", access_token="a-1", uid="sub")
    assert result == "revoked"
    assert [(data["token"], data["token_type_hint"]) for _, _, data, _ in backend.sent] == [
        ("r-1", "refresh_token"),
        ("a-1", "access_token"),
    ]
    assert all(method == "POST" and auth == ("client", "secret") for method, _, _, auth in backend.sent)
    # client_secret_post providers get the credentials in the body instead.
    backend = _FakeOidcBackend("https://idp.example/revoke", basic=False)
    revokers.revoke_rfc7009(backend, refresh_token="", access_token="a-1", uid="sub")
    assert backend.sent == [
        (
            "POST",
            "https://idp.example/revoke",
            {
                "token": "a-1",
                "token_type_hint": "access_token",
                "client_id": "client",
                "client_secret": "secret",
            },
            None,
        )
    ]
    # Discovery without a revocation_endpoint: nothing to call.
    assert revokers.revoke_rfc7009(_FakeOidcBackend(None), refresh_token="r", access_token="a", uid="s") == (
        "unsupported"
    )


def test_google_tokens_already_revoked_elsewhere_count_as_revoked(
    client, alice, django_capture_on_commit_callbacks
):
    from sandbox import oauth

    identity = UserSocialAuth.objects.get(provider="google-oauth2")
    _, refresh = stored_tokens(TokenSet.objects.get(identity=identity))
    oauth.revoke_grant(oauth.active_refresh_token("google", refresh).grant)  # the user revoked it at Google
    with django_capture_on_commit_callbacks(execute=True):
        _disconnect(client, identity)
    assert not TokenSet.objects.filter(provider="google-oauth2").exists()
    assert Activity.objects.get(kind=VaultKind.REVOKED).data["outcome"] == "already_invalid"
