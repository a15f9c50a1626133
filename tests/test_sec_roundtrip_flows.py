"""The OAuth round trip's security (issues 12 and 20): PKCE, one-time state, forged callbacks,
tokens of refused flows revoked, SITE_URL-only redirect URIs, and the owner told of a refused link.

Every flow is the real one (begin POST, the sandbox's form, the callback); the provider is the
sandbox, reached in-process.
"""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.core import mail
from django.test import Client, RequestFactory
from social_django.models import UserSocialAuth
from social_django.utils import load_backend, load_strategy

from accounts import flow_state
from accounts.activity_kinds import AccountKind
from accounts.models import User
from activity.models import Activity
from sandbox import providers
from sandbox.models import AuthorizationCode, Grant
from vault.activity_kinds import VaultKind
from vault.models import TokenSet

from .flows import _path, messages_on, provider_page, round_trip, sign_in, start
from .sandbox_support import install_testserver_transport

pytestmark = pytest.mark.django_db

TOKEN_PATHS = {"google-oauth2": "/sandbox/google/token", "github": "/sandbox/github/login/oauth/access_token"}
SANDBOX_NAME = {"google-oauth2": providers.GOOGLE, "github": providers.GITHUB}


def _query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def _identities(user: User) -> list[tuple[str, str]]:
    return sorted(UserSocialAuth.objects.filter(user=user).values_list("provider", "uid"))


def _token_calls(adapter, provider: str) -> list[tuple[str, str]]:
    return [call for call in adapter.calls if call[0] == "POST" and TOKEN_PATHS[provider] in call[1]]


def _grant(provider: str, email: str) -> Grant:
    return Grant.objects.filter(
        provider=SANDBOX_NAME[provider], subject=providers.subject_for(SANDBOX_NAME[provider], email)
    ).latest("pk")


# --- 12.1: PKCE S256 on Google and GitHub ------------------------------------------------------------


@pytest.mark.parametrize("provider", ["google-oauth2", "github"])
def test_authorize_url_carries_an_s256_challenge_and_the_code_needs_its_verifier(client, provider):
    result = sign_in(client, provider, email="alice@example.com")
    query = result.authorize_query
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43
    # The sandbox kept the challenge with the code and redeemed it only with the right verifier.
    code = AuthorizationCode.objects.get()
    assert code.code_challenge == query["code_challenge"]
    assert code.used_at is not None
    assert [p for p, _ in _identities(User.objects.get())] == [provider]


def _sandbox_code(client: Client, provider: str, *, challenge: str) -> str:
    """A code from the sandbox's form, for an authorize request with ``challenge`` (S256)."""
    params = {
        "client_id": providers.client_credentials(provider)[0],
        "redirect_uri": f"http://testserver/complete/{provider}/",
        "response_type": "code",
        "scope": "openid email profile" if provider == "google-oauth2" else "read:user user:email",
        "state": "s" * 32,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    path = (
        "/sandbox/google/authorize"
        if provider == "google-oauth2"
        else "/sandbox/github/login/oauth/authorize"
    )
    response = client.post(f"{path}?{urlencode(params)}", {"decision": "allow", "email": "v@example.com"})
    assert response.status_code == 302, response.content[:300]
    return _query(response.headers["Location"])["code"]


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("provider", "verifier", "expected"),
    [
        (
            "google-oauth2",
            None,
            (400, {"error": "invalid_grant", "error_description": "Missing code verifier."}),
        ),
        (
            "google-oauth2",
            "w" * 43,
            (400, {"error": "invalid_grant", "error_description": "Invalid code verifier."}),
        ),
        ("github", None, (200, {"error": "bad_verification_code"})),
        ("github", "w" * 43, (200, {"error": "bad_verification_code"})),
    ],
)
def test_sandbox_refuses_a_code_without_its_verifier_like_the_real_providers(
    client, provider, verifier, expected
):
    right = "r" * 43
    code = _sandbox_code(client, provider, challenge=_s256(right))
    client_id, secret = providers.client_credentials(provider)
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": f"http://testserver/complete/{provider}/",
        "client_id": client_id,
        "client_secret": secret,
    }
    if verifier:
        data["code_verifier"] = verifier
    response = client.post(TOKEN_PATHS[provider], data, headers={"Accept": "application/json"})
    status, body = expected
    assert response.status_code == status
    assert body.items() <= response.json().items()
    assert "access_token" not in response.json()
    # The right verifier cannot rescue a code already spent on a wrong attempt (it is burnt).
    data["code_verifier"] = right
    again = client.post(TOKEN_PATHS[provider], data, headers={"Accept": "application/json"})
    assert "access_token" not in again.json()


@pytest.mark.parametrize("provider", ["google-oauth2", "github"])
def test_a_victims_code_redeemed_in_the_attackers_own_flow_links_nothing(
    client, provider, django_capture_on_commit_callbacks
):
    # The victim starts signing in and consents; the code leaks (log, referrer, proxy).
    victim = Client()
    _begin, victim_authorize = start(victim, provider)
    victim_callback = provider_page(victim, victim_authorize, email="victim@example.com")
    stolen_code = _query(victim_callback)["code"]

    # The attacker, signed in to his own profile, starts a link and swaps in the victim's code.
    other = "github" if provider == "google-oauth2" else "google-oauth2"
    sign_in(client, other, email="attacker@example.com")
    attacker = User.objects.get()
    _begin, attacker_authorize = start(client, provider)
    own_state = _query(attacker_authorize)["state"]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.get(f"/complete/{provider}/?{urlencode({'code': stolen_code, 'state': own_state})}")

    assert response.status_code == 302
    assert _identities(attacker) == [(other, _identities(attacker)[0][1])]
    assert not UserSocialAuth.objects.filter(
        provider=provider, uid=providers.subject_for(provider, "victim@example.com")
    ).exists()
    assert not TokenSet.objects.filter(uid=providers.subject_for(provider, "victim@example.com")).exists()
    assert any("could not" in m or "did not" in m or "refused" in m for m in messages_on(client))


# --- 12.9: the state is used up by an error callback too ----------------------------------------------


@pytest.mark.parametrize("provider", ["google-oauth2", "github"])
def test_an_error_callback_uses_up_the_state_before_any_token_request(client, monkeypatch, provider):
    sign_in(client, "github" if provider == "google-oauth2" else "google-oauth2", email="alice@example.com")
    _begin, authorize = start(client, provider)
    denied = provider_page(client, authorize, email="alice.other@example.com", deny=True)
    assert _query(denied)["error"] == "access_denied"
    client.get(_path(denied))

    # The same state, now with a fresh code the provider issued for it.
    fresh = provider_page(client, authorize, email="alice.other@example.com")
    assert _query(fresh)["state"] == _query(denied)["state"]
    adapter = install_testserver_transport(monkeypatch)
    response = client.get(_path(fresh))

    assert response.status_code == 302
    assert _token_calls(adapter, provider) == []
    assert len(_identities(User.objects.get())) == 1


# --- 20.10: a forged callback leaves the pending flow alone -----------------------------------------


@pytest.mark.parametrize(
    "forged",
    [
        {"code": "forged-code", "state": "forged-state"},
        {"code": "forged-code"},
        {"error": "access_denied", "state": "forged-state"},
        {"error": "access_denied"},
    ],
)
def test_a_forged_callback_during_a_round_trip_does_not_break_it(client, forged):
    sign_in(client, "github", email="alice@example.com")
    _begin, authorize = start(client, "google-oauth2")
    real_callback = provider_page(client, authorize, email="alice.g@example.com")

    # Someone makes the browser load /complete/ with another state (a link, an image tag).
    client.get(f"/complete/google-oauth2/?{urlencode(forged)}")
    assert flow_state.auth_flow(client.session, "google-oauth2") is not None

    response = client.get(_path(real_callback))
    assert response.status_code == 302
    assert [p for p, _ in _identities(User.objects.get())] == ["github", "google-oauth2"]
    assert any("Linked your Google account" in m for m in messages_on(client))


# --- 20.10: every refusal after the code exchange revokes the fresh tokens -------------------------------


def _assert_revoked_and_erased(provider: str, email: str) -> None:
    grant = _grant(provider, email)
    assert grant.revoked, "the fresh tokens must be revoked at the provider"
    assert not grant.access_tokens.filter(grant__revoked=False).exists()
    assert not TokenSet.objects.filter(uid=grant.subject).exists()


def test_user_mismatch_after_the_exchange_revokes_the_fresh_tokens(
    client, django_capture_on_commit_callbacks
):
    # A sign-in started while signed out; another sign-in finishes first in the same browser.
    _begin, authorize = start(client, "google-oauth2")
    pending = provider_page(client, authorize, email="second@example.com")
    sign_in(client, "github", email="alice@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        client.get(_path(pending))
    assert any("different user" in m for m in messages_on(client))
    _assert_revoked_and_erased("google-oauth2", "second@example.com")
    alice = User.objects.get()
    assert Activity.objects.filter(user=alice, kind=VaultKind.REVOKED).exists()


def test_link_flow_expired_after_the_exchange_revokes_the_fresh_tokens(
    client, django_capture_on_commit_callbacks
):
    sign_in(client, "github", email="alice@example.com")
    _begin, authorize = start(client, "google-oauth2")
    callback = provider_page(client, authorize, email="alice.g@example.com")
    session = client.session
    flow = flow_state.auth_flow(session, "google-oauth2")
    flow.started_at -= 24 * 3600  # the tab was left open for a day
    flow_state.save_auth_flow(session, backend_name="google-oauth2", flow=flow)
    session.save()
    with django_capture_on_commit_callbacks(execute=True):
        client.get(_path(callback))
    assert any("too long ago" in m for m in messages_on(client))
    _assert_revoked_and_erased("google-oauth2", "alice.g@example.com")


def test_reauth_with_an_unknown_identity_revokes_the_fresh_tokens(client, django_capture_on_commit_callbacks):
    sign_in(client, "github", email="alice@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        round_trip(client, "google-oauth2", email="stranger@example.com", purpose="reauth")
    assert any("not linked to your profile" in m for m in messages_on(client))
    _assert_revoked_and_erased("google-oauth2", "stranger@example.com")


def test_merge_proof_with_an_unknown_identity_revokes_the_fresh_tokens(
    client, django_capture_on_commit_callbacks
):
    sign_in(client, "github", email="alice@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        round_trip(client, "google-oauth2", email="nobody@example.com", purpose="merge_proof")
    assert any("nothing to merge" in m for m in messages_on(client))
    _assert_revoked_and_erased("google-oauth2", "nobody@example.com")


def test_a_sign_in_stopped_at_the_existing_profile_question_revokes_its_tokens(
    client, django_capture_on_commit_callbacks
):
    sign_in(Client(), "github", email="alice@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        result = round_trip(client, "google-oauth2", email="alice@example.com")
    assert result.location == "/signin/existing-profile/"
    _assert_revoked_and_erased("google-oauth2", "alice@example.com")
    # Answering the question is a new round trip, which works with new tokens.
    assert User.objects.count() == 1


def test_tokens_of_a_refused_flow_are_kept_only_encrypted_until_revoked(client, settings):
    sign_in(client, "github", email="alice@example.com")
    # No on-commit run here: the revocation is still pending when we look.
    round_trip(client, "google-oauth2", email="stranger@example.com", purpose="reauth")
    pending = TokenSet.objects.get(identity__isnull=True)
    assert pending.status == TokenSet.Status.REVOKE_PENDING
    assert pending.owner_id == User.objects.get().pk
    assert pending.provider == "google-oauth2"
    live = _grant("google-oauth2", "stranger@example.com").access_tokens.get()
    access = pending.read_access_token()
    assert access and providers.hash_token(access) == live.token_hash
    for field in (pending.access_token_encrypted, pending.refresh_token_encrypted):
        assert pending.read_access_token() not in field


# --- 12.12: the owner hears about a refused attempt to link their identity ------------------------------


def test_the_owner_is_told_when_someone_tries_to_link_their_identity(
    client, django_capture_on_commit_callbacks
):
    bob_client = Client()
    sign_in(bob_client, "google-oauth2", email="bob@example.com", name="Bob Builder")
    bob = User.objects.get()
    mail.outbox.clear()

    sign_in(client, "github", email="alice@example.com")
    alice = User.objects.exclude(pk=bob.pk).get()
    with django_capture_on_commit_callbacks(execute=True):
        round_trip(client, "google-oauth2", email="bob@example.com")

    assert [p for p, _ in _identities(alice)] == ["github"]
    assert any("already linked to another profile" in m for m in messages_on(client))
    record = Activity.objects.get(user=bob, kind=AccountKind.LINK_REFUSED)
    assert "tried to link your Google account" in record.message
    assert str(alice.pk) not in record.message and "alice" not in record.message.lower()
    page = bob_client.get("/settings/activity/").content.decode()
    assert "tried to link your Google account" in page
    to_bob = [m for m in mail.outbox if m.to == ["bob@example.com"]]
    assert len(to_bob) == 1
    assert to_bob[0].subject == "Someone tried to link your Google account to another profile"
    assert "Bob Builder" in to_bob[0].body
    # Bob's own link and tokens are untouched.
    assert _identities(bob) == [("google-oauth2", providers.subject_for("google", "bob@example.com"))]
    assert TokenSet.objects.filter(identity__user=bob, status=TokenSet.Status.ACTIVE).count() == 1
    assert not TokenSet.objects.filter(identity__isnull=True).exists()


# --- 12.10: SITE_URL, never the Host header ------------------------------------------------------------


def test_redirect_uri_comes_from_site_url_whatever_the_host_header(settings, client):
    settings.SITE_URL = "http://testserver"
    for host in ("127.0.0.1:9999", "localhost"):
        request = RequestFactory().post("/login/github/", HTTP_HOST=host)
        request.session = client.session
        backend = load_backend(load_strategy(request), "github", redirect_uri="/complete/github/")
        assert _query(backend.auth_url())["redirect_uri"] == "http://testserver/complete/github/"
        assert backend.auth_url().startswith("http://testserver/sandbox/github/")


def test_a_browser_on_another_allowed_host_is_sent_to_site_urls_host_before_a_flow_starts(client, settings):
    # Production (DEBUG off) never redirects: a proxy that rewrites Host would loop.
    assert client.get("/", HTTP_HOST="localhost").status_code == 200
    settings.DEBUG = True  # `make run`: localhost:8000 and 127.0.0.1:8000 are both typed
    page = client.get("/?next=/settings/activity/", HTTP_HOST="localhost")
    assert page.status_code == 302
    assert page.headers["Location"] == "http://testserver/?next=/settings/activity/"
    begin = client.post("/login/github/", HTTP_HOST="127.0.0.1")
    assert begin.status_code == 302
    assert begin.headers["Location"] == "http://testserver/"
    assert flow_state.auth_flow(client.session, "github") is None
    # Machine endpoints answer on any allowed host.
    assert client.get("/healthz", HTTP_HOST="127.0.0.1").status_code == 200


def test_the_sandbox_sends_codes_only_to_site_urls_host(client):
    params = {
        "client_id": providers.client_credentials("github")[0],
        "redirect_uri": "http://127.0.0.1/complete/github/",
        "state": "s" * 32,
    }
    response = client.get(f"/sandbox/github/login/oauth/authorize?{urlencode(params)}", HTTP_HOST="127.0.0.1")
    assert response.status_code == 400
    assert "redirect_uri" in response.content.decode()
