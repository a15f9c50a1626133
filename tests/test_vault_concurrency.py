"""Single-flight refresh across threads (each with its own database connection, like processes).

On PostgreSQL both strategies run: the row lock the vault uses there, and the SQLite lease (so the
lease logic is also tested under real row-level concurrency). On SQLite (a file database in the
test settings, so threads really share it) the lease runs.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.conf import settings
from django.db import connection
from social_django.models import UserSocialAuth

import vault
from accounts.models import User
from accounts.unlinking import unlink_identity
from activity.models import Activity
from sandbox import state
from sandbox.state import token_is_active
from vault import provider_calls
from vault import refresh as vault_refresh
from vault.activity_kinds import VaultKind
from vault.models import TokenSet

from .flows import round_trip, sign_in
from .vault_support import expire, run_in_threads, stored_tokens

CALLS = 20


# Row locks exist on PostgreSQL only; SQLite runs the lease strategy (no test is skipped in CI).
STRATEGIES = ["row_lock", "lease"] if "postgresql" in settings.DATABASES["default"]["ENGINE"] else ["lease"]


@pytest.fixture(params=STRATEGIES)
def strategy(request, monkeypatch):
    monkeypatch.setattr(vault_refresh, "uses_row_lock", lambda: request.param == "row_lock")
    return request.param


@pytest.fixture(autouse=True)
def _no_retry_pause(monkeypatch):
    monkeypatch.setattr(provider_calls, "RETRY_BACKOFF", (0.0, 0.0))


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_calls_on_an_expired_github_token_refresh_once(client, strategy, capsys):
    sign_in(client, "github", email="alice@example.com")
    user = User.objects.get()
    token_set = TokenSet.objects.get()
    _, old_refresh = stored_tokens(token_set)
    expire(token_set)

    results, failures = run_in_threads(CALLS, lambda: vault.get_access_token(user, "github").access_token)

    assert failures == []
    assert len(results) == CALLS and len(set(results)) == 1
    refreshes = state.refresh_count("github")
    assert refreshes == 1
    new_access, new_refresh = stored_tokens(token_set)
    assert results[0] == new_access and token_is_active("github", new_access)
    assert new_refresh != old_refresh and not token_is_active("github", old_refresh)
    with capsys.disabled():
        print(f"\n[vault concurrency] {connection.vendor}/{strategy}: {CALLS} calls, {refreshes} refresh(es)")


@pytest.mark.django_db(transaction=True)
def test_concurrent_calls_during_an_outage_do_not_pile_onto_the_provider(client, strategy):
    sign_in(client, "github", email="alice@example.com")
    user = User.objects.get()
    expire(TokenSet.objects.get())
    state.set_failure_mode("github", "server_error")

    def call():
        try:
            vault.get_access_token(user, "github")
        except vault.ProviderUnavailable as error:
            return error.retry_after
        return None

    results, failures = run_in_threads(10, call)
    assert failures == [] and all(results)
    # One caller tried (with its retries); the rest waited.
    assert state.refresh_count("github") == 1 + provider_calls.MAX_RETRIES
    assert TokenSet.objects.get().status == TokenSet.Status.ACTIVE


@pytest.mark.django_db(transaction=True)
def test_refresh_racing_a_disconnect_never_writes_to_the_removed_token_set(client, strategy, monkeypatch):
    sign_in(client, "github", email="alice@example.com")
    round_trip(client, "google-oauth2", email="alice@example.com")  # so GitHub may be removed
    user = User.objects.get()
    github = UserSocialAuth.objects.get(provider="github")
    token_set = TokenSet.objects.get(identity=github)
    old_access, _ = stored_tokens(token_set)
    expire(token_set)

    provider_answered = threading.Event()
    disconnect_done = threading.Event()
    fresh: dict[str, str] = {}
    original = vault_refresh.call_provider

    def call_provider_then_wait(token_set_arg, ctx):
        outcome = original(token_set_arg, ctx)
        fresh["access"] = (outcome.response or {}).get("access_token", "")
        provider_answered.set()
        # On SQLite the disconnect completes meanwhile; on PostgreSQL it waits on our row lock.
        disconnect_done.wait(timeout=1.5)
        return outcome

    monkeypatch.setattr(vault_refresh, "call_provider", call_provider_then_wait)
    outcome: dict[str, object] = {}

    def fetch():
        try:
            outcome["token"] = vault.get_access_token(user, "github").access_token
        except vault.TokenVaultError as error:
            outcome["error"] = error
        finally:
            connection.close()

    def disconnect():
        provider_answered.wait(timeout=10)
        try:
            unlink_identity(user=user, identity_id=github.pk)
        finally:
            disconnect_done.set()
            connection.close()

    threads = [threading.Thread(target=fetch), threading.Thread(target=disconnect)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert fresh["access"] and fresh["access"] != old_access
    assert not UserSocialAuth.objects.filter(pk=github.pk).exists()
    # Whatever the order, no token set is left for the removed identity and no token stays alive.
    deadline = time.monotonic() + 5
    while TokenSet.objects.filter(provider="github").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not TokenSet.objects.filter(provider="github").exists()
    assert not token_is_active("github", fresh["access"])
    assert not token_is_active("github", old_access)
    revocations = Activity.objects.filter(kind=VaultKind.REVOKED, provider="github").count()
    if strategy == "row_lock":
        # The disconnect waited for the refresh, then revoked the fresh tokens it wrote.
        assert outcome.get("token") == fresh["access"]
        assert revocations == 1
    else:
        # The refresh found its row gone, handed nothing out and sent its fresh tokens to revocation.
        assert isinstance(outcome.get("error"), vault.ConnectionRequired)
        assert revocations == 2
