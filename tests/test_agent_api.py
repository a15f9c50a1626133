"""Agent access: keys, the token API and its actionable errors, connect requests, RFC 8693, limits."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from accounts.models import User
from activity.models import Activity
from sandbox import state as sandbox_state
from vault import agents, keyformat, provider_calls, staged_records
from vault.activity_kinds import VaultKind
from vault.models import AgentKey, ConnectRequest, TokenSet

from .flows import messages_on, round_trip, sign_in
from .leaks import cache_contents, decoded_sessions
from .vault_support import expire

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(client) -> User:
    sign_in(client, "github", email="alice@example.com", name="Alice")
    return User.objects.get(email="alice@example.com")


@pytest.fixture
def key(alice) -> str:
    _row, plaintext = agents.create_agent_key(
        user=alice, name="helper bot", providers=["github", "google-oauth2"]
    )
    return plaintext


def call(
    method: str, path: str, key: str | None = None, body: object = None, **extra
) -> tuple[int, dict, object]:
    client = Client()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    headers.update(extra)
    if method == "GET":
        response = client.get(path, **headers)
    else:
        response = client.generic(
            method,
            path,
            json.dumps(body) if body is not None else "",
            content_type="application/json",
            **headers,
        )
    return response.status_code, response.json(), response


# --- 1. agent keys ----------------------------------------------------------------------------


def test_key_format_prefix_randomness_and_checksum():
    key = keyformat.new_key()
    assert key.startswith("lsa_") and len(key) == keyformat.KEY_LENGTH
    assert keyformat.is_well_formed(key)
    assert not keyformat.is_well_formed(key[:-1] + ("A" if key[-1] != "A" else "B"))  # checksum catches typos
    assert keyformat.new_key() != key


def test_malformed_keys_are_refused_before_any_query(django_assert_num_queries):
    with django_assert_num_queries(0):
        for bad in ("", "lsa_short", "ghp_" + "a" * 49, keyformat.new_key()[:-2] + "zz"):
            with pytest.raises(agents.InvalidKey):
                agents.authenticate_agent_key(bad)


def test_agents_page_creates_a_key_shown_once(client, alice, django_capture_on_commit_callbacks):
    page = client.get("/settings/agents/")
    assert page.status_code == 200 and "Create an agent key" in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post(
            "/settings/agents/",
            {
                "name": "Claude at home",
                "providers": ["github"],
                "expires_in_days": "30",
                "scopes_github": "read:user",
            },
            follow=True,  # post/redirect/get: the key is on the page the redirect leads to
        )
    html = created.content.decode()
    assert created.status_code == 200 and created.redirect_chain == [("/settings/agents/", 303)]
    assert "no-store" in created.headers["Cache-Control"]
    row = AgentKey.objects.get()
    shown = html.split('data-agent-key="', 1)[1].split('"', 1)[0]
    assert keyformat.is_well_formed(shown)
    assert row.key_hash == keyformat.key_hash(shown) and row.key_hash != shown
    assert row.hint.endswith(shown[-4:])
    assert row.scopes == {"github": ["read:user"]}
    again = client.get("/settings/agents/").content.decode()
    assert shown not in again and row.hint in again
    assert any("agent key" in m.subject for m in mail.outbox)
    assert shown not in mail.outbox[-1].body


def test_creating_a_key_needs_a_recent_sign_in(client, alice):
    session = client.session
    session["auth_at"] = int(time.time()) - 3600
    session.save()
    response = client.post(
        "/settings/agents/", {"name": "x", "providers": ["github"], "expires_in_days": "30"}
    )
    assert response.headers["Location"].startswith("/settings/reauthenticate/")
    assert not AgentKey.objects.exists()


def test_bad_key_form_changes_nothing(client, alice):
    response = client.post("/settings/agents/", {"name": "", "providers": [], "expires_in_days": "3"})
    assert response.status_code == 400
    assert not AgentKey.objects.exists()


def test_revoke_stops_a_key_at_once_and_others_keys_are_not_found(client, alice, key):
    row = AgentKey.objects.get()
    assert call("POST", "/api/v1/token", key, {"connection": "github"})[0] == 200
    bob = Client()
    sign_in(bob, "google-oauth2", email="bob@example.com")
    bob.post(f"/settings/agents/{row.pk}/revoke/")
    assert AgentKey.objects.get().revoked_at is None
    assert any("not found" in m for m in messages_on(bob, "/settings/agents/"))
    client.post(f"/settings/agents/{row.pk}/revoke/")
    status, body, _ = call("POST", "/api/v1/token", key, {"connection": "github"})
    assert (status, body["error"]) == (401, "invalid_token")


def test_expired_key_and_deactivated_user_are_refused(alice, key):
    AgentKey.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert call("POST", "/api/v1/token", key, {"connection": "github"})[1]["error"] == "invalid_token"
    _row, fresh = agents.create_agent_key(user=alice, name="second", providers=["github"])
    alice.is_active = False
    alice.save()
    assert AgentKey.objects.get(name="second").revoked_at is not None
    assert call("POST", "/api/v1/token", fresh, {"connection": "github"})[0] == 401


# --- 2. token API -------------------------------------------------------------------------------


def test_token_api_hands_out_a_fresh_token_and_records_it(client, alice, key):
    status, body, response = call(
        "POST", "/api/v1/token", key, {"connection": "github"}, REMOTE_ADDR="10.1.2.3"
    )
    assert status == 200
    assert set(body) == {
        "access_token",
        "token_type",
        "expires_in",
        "expires_at",
        "scope",
        "connection",
        "account",
    }
    assert body["token_type"] == "Bearer" and body["connection"] == "github"
    assert body["account"] == alice.social_auth.get().pk
    assert sandbox_state.token_is_active("github", body["access_token"])
    assert "no-store" in response.headers["Cache-Control"]
    token_set = TokenSet.objects.get()
    assert token_set.read_refresh_token() not in response.content.decode()
    grant = Activity.objects.get(kind=VaultKind.TOKEN_ISSUED)
    assert (grant.user, grant.provider, grant.ip_address) == (alice, "github", "10.1.2.3")
    assert grant.agent_key_id == AgentKey.objects.get().pk and grant.data["agent"] == "helper bot"
    assert grant.identity_id == body["account"]
    agents_page = client.get("/settings/agents/").content.decode()
    assert "data-grant" in agents_page and "10.1.2.3" in agents_page
    assert "Token handed out" in client.get("/settings/activity/").content.decode()
    assert body["access_token"] not in agents_page


def test_key_is_accepted_only_in_the_authorization_header(alice, key):
    status, body, _ = call("POST", f"/api/v1/token?key={key}", None, {"connection": "github"})
    assert (status, body["error"]) == (400, "invalid_request")
    assert "Authorization header" in body["error_description"]
    status, body, _ = call("POST", "/api/v1/token", None, {"connection": "github", "key": key})
    assert (status, body["error"]) == (401, "invalid_token")
    status, _, _response = call("GET", f"/api/v1/connections?access_token={key}")
    assert status == 400
    assert not Activity.objects.filter(kind=VaultKind.TOKEN_ISSUED).exists()


def test_access_denied_for_providers_and_scopes_the_key_was_not_given(alice):
    # The key's limit covers the whole GitHub grant (read:user user:email): a narrower limit is
    # refused outright, GitHub tokens cannot be narrowed (tests/test_sec_vault_scope_limit.py).
    _row, github_only = agents.create_agent_key(
        user=alice, name="gh", providers=["github"], scopes={"github": ["read:user", "user:email"]}
    )
    status, body, _ = call("POST", "/api/v1/token", github_only, {"connection": "google-oauth2"})
    assert (status, body["error"]) == (403, "access_denied")
    status, body, _ = call("POST", "/api/v1/token", github_only, {"connection": "github", "scopes": ["repo"]})
    assert (status, body["error"]) == (403, "access_denied")
    assert (
        call("POST", "/api/v1/token", github_only, {"connection": "github", "scopes": ["read:user"]})[0]
        == 200
    )


def test_invalid_requests_are_refused_clearly(alice, key):
    for bad, said in (
        ({}, "'connection'"),
        ({"connection": 5}, "'connection'"),
        ({"connection": "github", "scopes": [1]}, "'scopes'"),
        ({"connection": "github", "account": "1"}, "'account'"),
        ({"connection": "github", "min_ttl": -1}, "'min_ttl'"),
        ({"connection": "myspace"}, "Unknown connection 'myspace'"),
        ([1, 2], "JSON object"),
    ):
        status, body, _ = call("POST", "/api/v1/token", key, bad)
        assert (status, body["error"]) == (400, "invalid_request"), bad
        assert said in body["error_description"], bad
    status, body, _ = call("POST", "/api/v1/connect-requests", key, {"connection": "myspace"})
    assert (status, body["error"]) == (400, "invalid_request")
    response = Client().post(
        "/api/v1/token", "not json", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}"
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    big = Client().post(
        "/api/v1/token",
        json.dumps({"connection": "github", "pad": "x" * 20000}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert big.status_code == 400 and "at most" in big.json()["error_description"]
    assert Client().get("/api/v1/token", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 405
    assert Client().get("/api/v1/nothing-here").json()["error"] == "not_found"
    assert not Activity.objects.filter(kind=VaultKind.TOKEN_ISSUED).exists()
    assert not ConnectRequest.objects.exists()


def test_malformed_scope_names_are_refused_before_anything_is_stored(alice, key):
    # A NUL once reached PostgreSQL's jsonb through a connect request (found by the API fuzzer).
    for scope in ("\u0000", "repo read", 'say"hi', "back\\slash", "x" * 201, ""):
        for path in ("/api/v1/token", "/api/v1/connect-requests"):
            status, body, _ = call("POST", path, key, {"connection": "google-oauth2", "scopes": [scope]})
            assert (status, body["error"]) == (400, "invalid_request"), (path, scope)
            assert "scope names" in body["error_description"]
    exchange = Client().post(
        "/api/v1/token",
        {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": key,
            "connection": "google-oauth2",
            "scope": "email \u0000",
        },
    )
    assert exchange.status_code == 400 and exchange.json()["error"] == "invalid_request"
    assert not ConnectRequest.objects.exists()
    assert not Activity.objects.filter(kind=VaultKind.TOKEN_ISSUED).exists()


# --- 3. actionable errors -----------------------------------------------------------------------


def test_connection_required_carries_a_reusable_connect_request(alice, key):
    status, body, _ = call("POST", "/api/v1/token", key, {"connection": "google-oauth2", "scopes": ["email"]})
    assert (status, body["error"]) == (403, "connection_required")
    assert body["authorize_url"].endswith(f"/connect/{body['connect_request']}/")
    assert body["required_scopes"] == ["email"]
    again = call("POST", "/api/v1/token", key, {"connection": "google-oauth2", "scopes": ["email"]})[1]
    assert again["connect_request"] == body["connect_request"]
    assert ConnectRequest.objects.count() == 1


def test_insufficient_scope_names_granted_and_missing(alice, key):
    status, body, _ = call("POST", "/api/v1/token", key, {"connection": "github", "scopes": ["repo"]})
    assert (status, body["error"]) == (403, "insufficient_scope")
    assert body["required_scopes"] == ["repo"]
    assert "read:user" in body["granted_scopes"]
    assert body["connect_request"] and body["authorize_url"]


def test_reauthorization_required_when_the_refresh_token_is_dead(alice, key):
    expire(TokenSet.objects.get())
    sandbox_state.set_failure_mode("github", "invalid_grant")
    status, body, _ = call("POST", "/api/v1/token", key, {"connection": "github"})
    assert (status, body["error"]) == (403, "reauthorization_required")
    assert body["authorize_url"] and body["connect_request"]


def test_provider_outage_answers_503_with_retry_after(alice, key, monkeypatch):
    monkeypatch.setattr(provider_calls, "RETRY_BACKOFF", (0.0, 0.0))
    expire(TokenSet.objects.get())
    sandbox_state.set_failure_mode("github", "server_error")
    status, body, response = call("POST", "/api/v1/token", key, {"connection": "github"})
    assert (status, body["error"]) == (503, "provider_unavailable")
    assert int(response.headers["Retry-After"]) >= 1
    assert TokenSet.objects.get().status == TokenSet.Status.ACTIVE  # nothing disabled


def test_another_users_account_id_is_answered_like_an_unknown_one(alice, key):
    bob = Client()
    sign_in(bob, "github", email="bob@example.com")
    bobs_id = User.objects.get(email="bob@example.com").social_auth.get().pk
    theirs = call("POST", "/api/v1/token", key, {"connection": "github", "account": bobs_id})[1]
    unknown = call("POST", "/api/v1/token", key, {"connection": "github", "account": 987654})[1]
    assert theirs["error"] == unknown["error"] == "connection_required"
    assert theirs["error_description"] == unknown["error_description"]
    assert not Activity.objects.filter(kind=VaultKind.TOKEN_ISSUED).exists()


# --- 4. connect requests ----------------------------------------------------------------------


def test_connect_request_round_trip_then_the_token_call_succeeds(client, alice, key):
    status, created, _ = call(
        "POST", "/api/v1/connect-requests", key, {"connection": "google-oauth2", "scopes": ["email"]}
    )
    assert status == 201 and created["status"] == "pending"
    request_id = created["id"]
    assert (
        call("POST", "/api/v1/connect-requests", key, {"connection": "google-oauth2", "scopes": ["email"]})[0]
        == 200
    )  # reused
    page = client.get(f"/connect/{request_id}/").content.decode()
    assert "helper bot" in page and 'title="email">See your email address' in page
    result = round_trip(
        client,
        "google-oauth2",
        email="alice@example.com",
        next=f"/connect/{request_id}/done/",
        scope=["email"],
    )
    assert result.location == f"/connect/{request_id}/done/"
    confirm = client.get(result.location)  # a GET only asks (issue 12.8)
    assert "data-confirm-done" in confirm.content.decode()
    assert call("GET", f"/api/v1/connect-requests/{request_id}", key)[1]["status"] == "pending"
    done = client.post(result.location)
    assert "the agent can continue" in done.content.decode()
    assert call("GET", f"/api/v1/connect-requests/{request_id}", key)[1]["status"] == "completed"
    status, body, _ = call("POST", "/api/v1/token", key, {"connection": "google-oauth2", "scopes": ["email"]})
    assert status == 200 and body["connection"] == "google-oauth2"
    # Single use: opening it again shows it is closed, and it stays completed.
    assert client.get(f"/connect/{request_id}/").status_code == 410
    client.post(f"/connect/{request_id}/decline/")
    assert ConnectRequest.objects.get(pk=request_id).status == "completed"


def test_connect_request_opened_by_another_user_refuses_and_links_nothing(alice, key):
    request_id = call("POST", "/api/v1/connect-requests", key, {"connection": "google-oauth2"})[1]["id"]
    mallory = Client()
    sign_in(mallory, "github", email="mallory@example.com")
    page = mallory.get(f"/connect/{request_id}/")
    assert page.status_code == 403 and "another profile" in page.content.decode()
    round_trip(mallory, "google-oauth2", email="mallory@example.com", next=f"/connect/{request_id}/done/")
    assert mallory.get(f"/connect/{request_id}/done/").status_code == 403
    assert mallory.post(f"/connect/{request_id}/done/").status_code == 403
    assert mallory.post(f"/connect/{request_id}/decline/").status_code == 403
    assert ConnectRequest.objects.get(pk=request_id).status == "pending"
    assert not alice.social_auth.filter(provider="google-oauth2").exists()


def test_connect_request_needs_sign_in_and_can_be_declined(alice, key):
    request_id = call("POST", "/api/v1/connect-requests", key, {"connection": "google-oauth2"})[1]["id"]
    anonymous = Client()
    assert (
        anonymous.get(f"/connect/{request_id}/").headers["Location"] == f"/?next=%2Fconnect%2F{request_id}%2F"
    )
    browser = Client()
    sign_in(browser, "github", email="alice@example.com", next=f"/connect/{request_id}/")
    browser.post(f"/connect/{request_id}/decline/")
    assert call("GET", f"/api/v1/connect-requests/{request_id}", key)[1]["status"] == "declined"


def test_connect_requests_expire_and_are_only_readable_by_their_key(alice, key):
    request_id = call("POST", "/api/v1/connect-requests", key, {"connection": "google-oauth2"})[1]["id"]
    _row, other_key = agents.create_agent_key(user=alice, name="other", providers=["google-oauth2"])
    status, body, _ = call("GET", f"/api/v1/connect-requests/{request_id}", other_key)
    assert (status, body["error"]) == (404, "not_found")
    ConnectRequest.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert call("GET", f"/api/v1/connect-requests/{request_id}", key)[1]["status"] == "expired"


def test_connections_api_lists_what_the_key_may_see_and_never_tokens(alice):
    _row, github_only = agents.create_agent_key(user=alice, name="gh", providers=["github"])
    status, body, response = call("GET", "/api/v1/connections", github_only)
    assert status == 200
    [row] = body["connections"]
    assert (row["connection"], row["status"], row["default"]) == ("github", "active", True)
    token_set = TokenSet.objects.get()
    text = response.content.decode()
    assert token_set.read_access_token() not in text and token_set.read_refresh_token() not in text


def test_merge_revokes_the_merged_profiles_keys_and_cancels_its_requests(alice, key):
    from accounts import merging

    other = User.objects.create_user("other", "other@example.com")
    _row, other_key = agents.create_agent_key(user=other, name="theirs", providers=["google-oauth2"])
    request_id = call("POST", "/api/v1/connect-requests", other_key, {"connection": "google-oauth2"})[1]["id"]
    merging.merge_profiles(into=alice, source=other, move_identity_ids=None)
    assert call("GET", "/api/v1/connections", other_key)[0] == 401
    assert ConnectRequest.objects.get(pk=request_id).status == "expired"
    assert call("GET", "/api/v1/connections", key)[0] == 200


# --- 5. RFC 8693 --------------------------------------------------------------------------------

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


def exchange(**fields) -> tuple[int, dict]:
    from urllib.parse import urlencode

    response = Client().post(
        "/api/v1/token", urlencode(fields), content_type="application/x-www-form-urlencoded"
    )
    return response.status_code, response.json()


def test_token_exchange_form_answers_in_rfc8693_shape(alice, key):
    status, body = exchange(
        grant_type=EXCHANGE, subject_token=key, connection="github", login_hint="alice@example.com"
    )
    assert status == 200
    assert body["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert body["token_type"] == "Bearer" and body["access_token"] and body["expires_in"] > 0
    assert "refresh_token" not in body


def test_token_exchange_errors_follow_rfc6749(alice, key):
    assert exchange(grant_type="password", subject_token=key, connection="github")[1]["error"] == (
        "unsupported_grant_type"
    )
    status, body = exchange(grant_type=EXCHANGE, subject_token="lsa_nope", connection="github")
    assert (status, body["error"], body["linking_site_error"]) == (400, "invalid_request", "invalid_token")
    status, body = exchange(grant_type=EXCHANGE, subject_token=key, connection="google-oauth2")
    assert (status, body["error"]) == (400, "invalid_target")
    assert body["authorize_url"] and body["connect_request"]
    status, body = exchange(grant_type=EXCHANGE, subject_token=key, connection="github", scope="repo")
    assert (status, body["error"]) == (400, "invalid_scope")
    status, body = exchange(grant_type=EXCHANGE, subject_token=key, connection="github", login_hint="nobody")
    assert (status, body["error"]) == (400, "invalid_target")
    sign_in(Client(), "github", email="bob@example.com")  # another user's account is never matched
    status, body = exchange(
        grant_type=EXCHANGE, subject_token=key, connection="github", login_hint="bob@example.com"
    )
    assert (status, body["error"]) == (400, "invalid_target")
    status, body = exchange(
        grant_type=EXCHANGE, subject_token=key, connection="github", login_hint="ALICE@example.com"
    )
    assert status == 200


def test_token_exchange_form_fields_are_checked_not_coerced(alice, key):
    for extra, said in (
        ({"min_ttl": "-1"}, "'min_ttl'"),
        ({"min_ttl": "1e3"}, "'min_ttl'"),
        ({"min_ttl": "soon"}, "'min_ttl'"),
        ({"login_hint": "a" * 255}, "'login_hint'"),
        ({"connection": "myspace"}, "Unknown connection"),
    ):
        status, body = exchange(
            **{"grant_type": EXCHANGE, "subject_token": key, "connection": "github", **extra}
        )
        assert (status, body["error"], body["linking_site_error"]) == (
            400,
            "invalid_request",
            "invalid_request",
        )
        assert said in body["error_description"], extra
    status, body = exchange(grant_type=EXCHANGE, subject_token=key, connection="github", min_ttl="120")
    assert status == 200 and body["expires_in"] >= 120
    assert Activity.objects.filter(kind=VaultKind.TOKEN_ISSUED).count() == 1


# --- 7. limits ------------------------------------------------------------------------------------


def test_per_key_rate_limit_answers_429_with_retry_after(settings, alice, key, limit_cache):
    settings.VAULT_RATE_LIMITS = {"key": (3, 60)}
    codes = [call("GET", "/api/v1/connections", key)[0] for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    _status, body, response = call("GET", "/api/v1/connections", key)
    assert body["error"] == "rate_limited" and int(response.headers["Retry-After"]) >= 1


def test_per_user_rate_limit_covers_all_their_keys(settings, alice, key, limit_cache):
    settings.VAULT_RATE_LIMITS = {"user": (2, 60)}
    _row, second = agents.create_agent_key(user=alice, name="second", providers=["github"])
    assert [call("GET", "/api/v1/connections", k)[0] for k in (key, second, second)] == [200, 200, 429]


def test_failed_key_attempts_are_limited_per_address(settings, alice, key, limit_cache):
    settings.VAULT_RATE_LIMITS = {"auth_failure": (3, 300)}
    for _ in range(3):
        assert call("GET", "/api/v1/connections", keyformat.new_key(), REMOTE_ADDR="10.9.9.9")[0] == 401
    status, body, _ = call("GET", "/api/v1/connections", keyformat.new_key(), REMOTE_ADDR="10.9.9.9")
    assert (status, body["error"]) == (429, "rate_limited")  # further refused keys wait
    assert call("GET", "/api/v1/connections", key, REMOTE_ADDR="10.9.9.9")[0] == 200  # a good key never
    assert call("GET", "/api/v1/connections", key, REMOTE_ADDR="10.9.9.10")[0] == 200


def test_token_requests_count_against_the_limits_and_a_refused_one_hands_out_nothing(
    settings, alice, key, limit_cache
):
    settings.VAULT_RATE_LIMITS = {"key": (2, 60)}
    answers = [call("POST", "/api/v1/token", key, {"connection": "github"}) for _ in range(3)]
    assert [status for status, _body, _ in answers] == [200, 200, 429]
    _status, body, response = answers[2]
    assert body["error"] == "rate_limited" and "access_token" not in body
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    staged_records.drain_all()  # with Redis the records wait there until the site moves them
    assert Activity.objects.filter(kind=VaultKind.TOKEN_ISSUED).count() == 2


def test_a_blocked_address_waits_on_the_token_endpoint_too(settings, alice, key, limit_cache):
    settings.VAULT_RATE_LIMITS = {"auth_failure": (2, 300)}
    bad = keyformat.new_key()
    keys = (bad, "lsa_nope", keyformat.new_key(), key)
    statuses = [call("POST", "/api/v1/token", k, {"connection": "github"})[0] for k in keys]
    assert statuses == [401, 401, 429, 200]  # refused keys wait; the good key is served
    staged_records.drain_all()
    assert Activity.objects.filter(kind=VaultKind.TOKEN_ISSUED).count() == 1


def test_staff_see_grants_and_keys_in_the_admin_without_secrets(alice, key):
    _status, body, _ = call("POST", "/api/v1/token", key, {"connection": "github"})
    staff = User.objects.create_superuser("root", "root@example.com", "pw-for-tests-123")
    admin = Client()
    admin.force_login(staff)
    grants = admin.get("/admin/activity/activity/?kind=token_issued").content.decode()
    keys = admin.get("/admin/vault/agentkey/").content.decode()
    assert "helper bot" in grants and "helper bot" in keys
    assert body["access_token"] not in grants and key not in keys


def test_an_agent_key_appears_only_on_its_creation_page(
    client, alice, caplog, django_capture_on_commit_callbacks
):
    import logging

    from django.core.management import call_command
    from django.db import connection

    caplog.set_level(logging.DEBUG)
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post(
            "/settings/agents/",
            {"name": "canary", "providers": ["github"], "expires_in_days": "7"},
            follow=True,
        )
    key = created.content.decode().split('data-agent-key="', 1)[1].split('"', 1)[0]
    call("POST", "/api/v1/token", key, {"connection": "github"})
    call("GET", f"/api/v1/connections?key={key}")  # a key sent in a URL is refused, and not logged
    staff = User.objects.create_superuser("root", "root@example.com", "pw-for-tests-123")
    admin = Client()
    admin.force_login(staff)
    pages = [client.get(p).content.decode() for p in ("/settings/agents/", "/settings/activity/")]
    pages += [
        admin.get(p).content.decode()
        for p in (
            "/admin/vault/agentkey/",
            "/admin/activity/activity/",
            f"/admin/vault/agentkey/{AgentKey.objects.get().pk}/change/",
        )
    ]
    dump = []
    with connection.cursor() as cursor:
        for table in ("vault_agentkey", "accounts_activity", "django_session"):
            cursor.execute(f"SELECT * FROM {table}")
            dump.append(repr(cursor.fetchall()))
    sessions = decoded_sessions()
    assert any("_auth_user_id" in session for session in sessions)  # really decoded
    dump += [repr(sessions), repr(cache_contents())]
    from io import StringIO

    out = StringIO()
    call_command("vault_status", stdout=out)
    for where, text in [
        ("logs", caplog.text),
        ("mail", " ".join(m.body for m in mail.outbox)),
        ("database", " ".join(dump)),
        ("command", out.getvalue()),
        *[("page", p) for p in pages],
    ]:
        assert key not in text, where
        assert key[4:20] not in text, where


def test_a_token_request_costs_two_queries(alice, key, django_assert_num_queries):
    with django_assert_num_queries(3):  # the first use also notes the key's last use
        assert call("POST", "/api/v1/token", key, {"connection": "github"})[0] == 200
    # One query for the key, its user, and the user's GitHub accounts with their token sets;
    # one insert for the activity record.
    with django_assert_num_queries(2):
        status, body, _ = call("POST", "/api/v1/token", key, {"connection": "github"})
    assert status == 200 and body["access_token"]
