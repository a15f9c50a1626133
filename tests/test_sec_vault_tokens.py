"""Issues 12.3-12.5, 20.9 and the deadline items: what the vault hands out, and when it refreshes.

* ``min_ttl`` longer than the provider's tokens live does not refresh on every call (12.3);
* a blank or garbled stored access token is a flagged vault fault, never handed out or stored (12.4);
* a ciphertext that does not decrypt flags the token set, once, and it fails fast after (12.5);
* a token response without ``expires_in`` gets an assumed lifetime and is renewed (20.9);
* a slow provider and a dead SQLite lease are bounded by one deadline, with ``Retry-After``.
"""

from __future__ import annotations

import io
import json
import logging
import math
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from social_django.models import UserSocialAuth

import vault
from accounts.models import User
from activity.models import Activity
from sandbox import state as sandbox_state
from vault import agents
from vault import capture as vault_capture
from vault import refresh as vault_refresh
from vault.activity_kinds import VaultKind
from vault.models import TokenSet

from .flows import sign_in
from .vault_support import expire, http_status, patch_transport, stored_tokens

pytestmark = pytest.mark.django_db

SANDBOX = {"github": "github", "google-oauth2": "google"}


@pytest.fixture(params=["github", "google-oauth2"])
def provider(request):
    return request.param


@pytest.fixture
def alice(client, provider) -> User:
    sign_in(client, provider, email="alice@example.com")
    return User.objects.get()


@pytest.fixture
def key(alice, provider) -> str:
    return agents.create_agent_key(user=alice, name="bot", providers=[provider])[1]


def token(key: str, **body) -> tuple[int, dict, object]:
    response = Client().post(
        "/api/v1/token",
        json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    return response.status_code, response.json(), response


def the_token_set() -> TokenSet:
    return TokenSet.objects.get(identity__isnull=False)


def issued_count() -> int:
    return Activity.objects.filter(kind=VaultKind.TOKEN_ISSUED).count()


# --- 12.3: min_ttl longer than a token lives ------------------------------------------------------


def test_min_ttl_beyond_the_token_lifetime_does_not_refresh_every_call(settings, client, provider):
    settings.SANDBOX_TOKEN_TTL = 3599  # Google's lifetime
    sign_in(client, provider, email="alice@example.com")
    alice = User.objects.get()
    key = agents.create_agent_key(user=alice, name="bot", providers=[provider])[1]
    stored = stored_tokens(the_token_set())[0]
    answers = [token(key, connection=provider, min_ttl=3600) for _ in range(5)]
    answers += [(200, {"access_token": vault.get_access_token(alice, provider, min_ttl=3600).access_token})]
    answers += [(200, {"access_token": vault.get_access_token(alice, provider, min_ttl=3600).access_token})]
    assert sandbox_state.refresh_count(SANDBOX[provider]) == 0
    assert {body["access_token"] for _status, body, *_ in answers} == {stored}
    # The answer says the token's real (shorter) lifetime.
    status, body, _ = token(key, connection=provider, min_ttl=3600)
    assert status == 200 and 3500 < body["expires_in"] < 3600
    # Once the token has aged, the same request refreshes, once.
    expire(the_token_set(), seconds_ago=-3000)
    for _ in range(5):
        assert token(key, connection=provider, min_ttl=3600)[0] == 200
    assert sandbox_state.refresh_count(SANDBOX[provider]) == 1


# --- 12.4: blank or garbled stored access tokens ---------------------------------------------------


def _store_raw_access_token(token_set: TokenSet, value: str) -> None:
    """Write ``value`` as the stored access token, bypassing the vault's checks (as a bug might)."""
    from vault import crypto

    token_set.refresh_from_db()
    # crypto refuses to encrypt "": an empty column is what reads back as an empty token.
    encrypted = crypto.encrypt(value, binding=token_set.binding("access_token")) if value else ""
    TokenSet.objects.filter(pk=token_set.pk).update(access_token_encrypted=encrypted)


@pytest.mark.parametrize("bad", ["", "ghu_ab cd", "token\x00", "\u00e9t\u00e9"])
def test_a_blank_or_impossible_stored_token_is_never_handed_out(alice, key, provider, bad, caplog):
    _store_raw_access_token(the_token_set(), bad)
    for _ in range(2):
        status, body, _response = token(key, connection=provider)
        assert (status, body["error"]) == (503, "vault_unavailable")
        assert "access_token" not in body and "reconnect" in body["error_description"]
        assert f"connect={provider}" in body["authorize_url"]
    with pytest.raises(vault.VaultUnavailable):
        vault.get_access_token(alice, provider)
    token_set = the_token_set()
    assert token_set.status == TokenSet.Status.VAULT_FAULT
    assert token_set.last_error_code == "implausible_access_token"
    assert issued_count() == 0
    flagged = [r for r in caplog.records if "flagged vault_fault" in r.getMessage()]
    assert len(flagged) == 1


def test_capture_never_stores_an_empty_or_non_string_access_token(alice, provider):
    token_set = the_token_set()
    before = stored_tokens(token_set)
    identity = UserSocialAuth.objects.get()
    for bad in ("", None, 12345, ["a"], " "):
        assert (
            vault_capture.capture_tokens(identity=identity, response={"access_token": bad, "expires_in": 60})
            is None
        )
    assert stored_tokens(token_set) == before


@pytest.mark.parametrize("bad", ["", 12345, "two words"])
def test_a_refresh_answering_an_empty_access_token_stores_nothing(alice, provider, monkeypatch, bad):
    token_set = the_token_set()
    expire(token_set)
    before = stored_tokens(token_set)
    body = json.dumps({"access_token": bad, "token_type": "bearer", "expires_in": 3600}).encode()
    patch_transport(
        monkeypatch, when=lambda method, url: url.endswith("token"), answer=http_status(200, body)
    )
    with pytest.raises(vault.ProviderUnavailable) as caught:
        vault.get_access_token(alice, provider)
    assert caught.value.retry_after > 0
    assert stored_tokens(token_set) == before
    token_set.refresh_from_db()
    assert token_set.status == TokenSet.Status.ACTIVE
    assert token_set.last_error_code == "malformed_token_response"


# --- 12.5: a ciphertext that does not decrypt ----------------------------------------------------------


def _corrupt(token_set: TokenSet, field: str) -> None:
    value = getattr(TokenSet.objects.get(pk=token_set.pk), field)
    flipped = value[:-6] + ("A" if value[-6] != "A" else "B") + value[-5:]
    TokenSet.objects.filter(pk=token_set.pk).update(**{field: flipped})


@pytest.mark.parametrize("provider", ["github"])
def test_an_access_token_that_does_not_decrypt_flags_the_set_once(client, alice, key, provider, caplog):
    caplog.set_level(logging.INFO)
    _corrupt(the_token_set(), "access_token_encrypted")
    for _ in range(3):
        status, body, _response = token(key, connection=provider)
        assert (status, body["error"]) == (503, "vault_unavailable")
    errors_logged = [r for r in caplog.records if r.name.startswith("vault.") and r.levelno >= logging.ERROR]
    assert len(errors_logged) == 1, [r.getMessage() for r in errors_logged]
    token_set = the_token_set()
    assert token_set.status == TokenSet.Status.VAULT_FAULT
    assert token_set.last_error_code == "decryption_failed"
    # The person sees "Reconnect"; the agent API's connections list says so too.
    page = client.get("/settings/connections/").content.decode()
    assert 'data-token-status="vault_fault"' in page and "Reconnect" in page
    listed = Client().get("/api/v1/connections", HTTP_AUTHORIZATION=f"Bearer {key}").json()
    assert [c["status"] for c in listed["connections"]] == ["vault_fault"]
    # Staff: vault_status counts it, the admin shows it.
    out = io.StringIO()
    call_command("vault_status", stdout=out)
    assert "  vault fault: 1" in out.getvalue()
    # Reconnecting stores a new token set value and clears the flag.
    client.post("/logout/")
    sign_in(client, provider, email="alice@example.com")
    token_set.refresh_from_db()
    assert token_set.status == TokenSet.Status.ACTIVE
    assert token(key, connection=provider)[0] == 200


@pytest.mark.parametrize("provider", ["github"])
def test_a_refresh_token_that_does_not_decrypt_flags_the_set_and_is_not_retried(alice, key, provider):
    token_set = the_token_set()
    _corrupt(token_set, "refresh_token_encrypted")
    expire(token_set)
    for _ in range(3):
        status, body, _response = token(key, connection=provider)
        assert (status, body["error"]) == (503, "vault_unavailable")
    assert the_token_set().status == TokenSet.Status.VAULT_FAULT
    assert sandbox_state.refresh_count(SANDBOX[provider]) == 0
    assert vault_refresh.refresh_expiring(within=600).refreshed == 0


def test_staff_see_the_flag_in_the_admin(client, staff):
    TokenSet.objects.update(status=TokenSet.Status.VAULT_FAULT, last_error_code="decryption_failed")
    page = client.get("/admin/vault/tokenset/").content.decode()
    assert "Vault fault: reconnect" in page and "decryption_failed" in page


# --- 20.9: no expires_in ---------------------------------------------------------------------------


def test_a_token_without_expires_in_gets_the_assumed_lifetime_and_is_renewed(
    client, settings, alice, provider
):
    settings.VAULT_ASSUMED_TOKEN_LIFETIME = 900
    identity = UserSocialAuth.objects.get()
    _old_access, refresh = stored_tokens(the_token_set())
    before = timezone.now()
    vault_capture.capture_tokens(
        identity=identity, response={"access_token": "opaque-no-expiry-1", "token_type": "bearer"}
    )
    token_set = the_token_set()
    assert token_set.expiry_assumed
    assert before + timedelta(seconds=899) <= token_set.expires_at <= timezone.now() + timedelta(seconds=900)
    assert stored_tokens(token_set)[1] == refresh  # the refresh token is kept
    answer = vault.get_access_token(alice, provider)
    assert answer.access_token == "opaque-no-expiry-1" and 890 < answer.expires_in <= 900
    page = client.get("/settings/connections/").content.decode()
    assert "expiry assumed" in page
    # It is renewed early: when the assumed lifetime is nearly over, by cron and on demand.
    expire(token_set, seconds_ago=-100)
    assert vault_refresh.refresh_expiring(within=600).refreshed == 1
    assert stored_tokens(token_set)[0] != "opaque-no-expiry-1"
    token_set.refresh_from_db()
    assert not token_set.expiry_assumed  # the sandbox states expires_in


@pytest.mark.parametrize("provider", ["github"])
def test_an_assumed_expiry_without_a_refresh_token_is_not_a_reconnect(client, settings, alice, provider):
    settings.VAULT_ASSUMED_TOKEN_LIFETIME = 600
    identity = UserSocialAuth.objects.get()
    token_set = the_token_set()
    TokenSet.objects.filter(pk=token_set.pk).update(refresh_token_encrypted="")
    vault_capture.capture_tokens(
        identity=identity, response={"access_token": "gho_classic", "token_type": "bearer"}
    )
    assert vault.get_access_token(alice, provider).expires_in <= 600
    expire(token_set)
    answer = vault.get_access_token(alice, provider)
    # Nothing can renew it and its real expiry is unknown: handed out, expiry not invented.
    assert answer.access_token == "gho_classic" and answer.expires_in is None
    assert the_token_set().status == TokenSet.Status.ACTIVE
    page = client.get("/settings/connections/").content.decode()
    assert "Reconnect required" not in page and "expiry assumed" in page


# --- deadlines: a slow provider, a dead lease -------------------------------------------------------


@pytest.mark.parametrize("provider", ["github"])
def test_a_slow_provider_is_bounded_by_one_deadline(settings, alice, key, provider):
    settings.SOCIAL_AUTH_REQUESTS_TIMEOUT = 1.0
    settings.SANDBOX_SLOW_SECONDS = 1.2
    settings.VAULT_REFRESH_DEADLINE = 2.0
    expire(the_token_set())
    sandbox_state.set_failure_mode("github", "slow")
    started = time.monotonic()
    status, body, response = token(key, connection=provider)
    elapsed = time.monotonic() - started
    assert (status, body["error"]) == (503, "provider_unavailable")
    assert int(response.headers["Retry-After"]) >= 1
    # Before: three attempts of 1.2 s and two pauses (about 4.6 s).
    assert elapsed < 2.5, elapsed


@pytest.fixture
def lease_only(monkeypatch):
    """The SQLite strategy, on whichever database runs the tests."""
    monkeypatch.setattr(vault_refresh, "uses_row_lock", lambda: False)


@pytest.mark.parametrize("provider", ["github"])
def test_a_dead_lease_is_bounded_by_the_request_deadline(settings, alice, key, provider, lease_only):
    settings.VAULT_REFRESH_DEADLINE = 2.0
    token_set = the_token_set()
    expire(token_set)
    # A process claimed the refresh (a lease as long as the code gives one) and died.
    lease_seconds = vault_refresh.lease_seconds()
    assert lease_seconds <= math.ceil(settings.VAULT_REFRESH_DEADLINE) + 1
    TokenSet.objects.filter(pk=token_set.pk).update(
        lease_id="dead-process", lease_expires_at=timezone.now() + timedelta(seconds=lease_seconds)
    )
    started = time.monotonic()
    status, body, response = token(key, connection=provider)
    elapsed = time.monotonic() - started
    assert (status, body["error"]) == (503, "provider_unavailable")
    assert elapsed < settings.VAULT_REFRESH_DEADLINE + 1, elapsed
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= lease_seconds
    time.sleep(retry_after + 0.1)
    assert token(key, connection=provider)[0] == 200
    assert sandbox_state.refresh_count("github") == 1


@pytest.mark.parametrize("provider", ["github"])
def test_a_waiter_gives_up_at_the_deadline_even_on_a_long_lease(settings, alice, provider, lease_only):
    settings.VAULT_REFRESH_DEADLINE = 1.0
    token_set = the_token_set()
    expire(token_set)
    TokenSet.objects.filter(pk=token_set.pk).update(
        lease_id="old-code", lease_expires_at=timezone.now() + timedelta(seconds=30)
    )
    started = time.monotonic()
    with pytest.raises(vault.ProviderUnavailable) as caught:
        vault.get_access_token(alice, provider)
    assert time.monotonic() - started < 2.0
    assert 25 <= caught.value.retry_after <= 30


# --- one rule, one place: the hot path and get_access_token agree --------------------------------------


@pytest.mark.parametrize("state", ["blank", "flagged", "limited"])
@pytest.mark.parametrize("provider", ["github"])
def test_the_hot_path_and_the_python_api_refuse_alike(alice, provider, state):
    scopes = {provider: ["read:user"]} if state == "limited" else None
    row, key = agents.create_agent_key(user=alice, name="bot", providers=[provider], scopes=scopes)
    token_set = the_token_set()
    if state == "blank":
        TokenSet.objects.filter(pk=token_set.pk).update(access_token_encrypted="")
    elif state == "flagged":
        TokenSet.objects.filter(pk=token_set.pk).update(status=TokenSet.Status.VAULT_FAULT)
    status, body, _response = token(key, connection=provider)
    with pytest.raises(vault.TokenVaultError) as caught:
        vault.get_access_token(alice, provider, limit=agents.scope_limit(row, connection=provider))
    assert (status, body["error"]) == (caught.value.status, caught.value.code)
    assert status in (403, 503) and "access_token" not in body
    assert issued_count() == 0
