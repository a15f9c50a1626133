"""Interoperability with a provider nobody here wrote: the `oidc-provider` npm package.

The provider runs under Node on a local port (``tests/oidc/provider.mjs``, started once per session
by ``tests/oidc_fixtures.py``); the site runs under ``live_server``; a ``requests`` session clicks
through both like a browser (the provider's development login and consent pages are plain forms).
Two connections point at it: ``oidc`` (the single-provider settings) and ``acme`` (a named provider
from ``OIDC_PROVIDERS``), each with its own client and callback.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from social_core.exceptions import AuthResponseError
from social_django.models import UserSocialAuth
from social_django.utils import load_backend, load_strategy

import vault
from accounts.activity_kinds import AccountKind
from accounts.models import User
from accounts.oidc.backend import OpenIdConnectAuth
from activity.models import Activity
from vault.activity_kinds import VaultKind
from vault.models import TokenSet

from . import oidc_fixtures
from .oidc_fixtures import NAMED_PROVIDER, SiteSession
from .vault_support import stored_tokens

pytestmark = [pytest.mark.django_db(transaction=True)]

oidc_provider = oidc_fixtures.oidc_provider
oidc_site = oidc_fixtures.oidc_site


def _identity(provider: str = "oidc") -> UserSocialAuth:
    return UserSocialAuth.objects.get(provider=provider)


def _connections(session: SiteSession, response) -> str:
    assert response.status_code == 200, response.text[:800]
    assert urlsplit(response.url).path == "/settings/connections/", response.url
    return response.text


def test_sign_in_with_the_provider(live_server, oidc_site):
    session = SiteSession(live_server.url)
    begin = session.start("oidc")
    # The authorization request as the provider received it.
    authorize = next(r for r in [*begin.history, begin] if r.url.startswith(f"{oidc_site.issuer}/auth"))
    query = {k: v[0] for k, v in parse_qs(urlsplit(authorize.url).query).items()}
    assert query["code_challenge_method"] == "S256" and query["nonce"] and query["state"]
    assert "offline_access" in query["scope"].split() and query["prompt"] == "consent"

    page = _connections(session, session.at_oidc_provider(begin, oidc_site.issuer, login="alice"))
    identity = _identity()
    assert identity.uid == "alice"
    assert 'data-provider="oidc" data-uid="alice"' in page
    assert "Welcome! Your profile was created from your Node IdP account" in page
    # This provider's email_verified is not trusted: the address is shown on the identity but
    # never becomes the profile's notice address (only provider-verified addresses get mail).
    assert identity.details.email == "alice@example.test" and identity.details.email_verified is False
    assert identity.user.email == ""
    # The provider issued a refresh token (offline_access + consent); the vault holds both tokens.
    access, refresh = stored_tokens(TokenSet.objects.get(identity=identity))
    assert access and refresh
    assert oidc_site.introspect(access)["sub"] == "alice"
    assert oidc_site.introspect(refresh, hint="refresh_token")["active"] is True
    assert not {"access_token", "refresh_token", "id_token"} & set(identity.extra_data)
    assert identity.extra_data["_oidc_id_token_context"]["iss"] == oidc_site.issuer


def test_named_provider_has_its_own_backend_and_callback(live_server, oidc_site):
    session = SiteSession(live_server.url)
    home = session.get("/")
    assert "Continue with Acme Corp" in home.text
    begin = session.start(NAMED_PROVIDER)
    authorize = next(r for r in [*begin.history, begin] if r.url.startswith(f"{oidc_site.issuer}/auth"))
    query = parse_qs(urlsplit(authorize.url).query)
    assert query["redirect_uri"] == [f"{live_server.url}/complete/{NAMED_PROVIDER}/"]
    assert query["client_id"] == [oidc_site.clients[NAMED_PROVIDER][0]]
    page = _connections(session, session.at_oidc_provider(begin, oidc_site.issuer, login="carol"))
    identity = _identity(NAMED_PROVIDER)
    assert identity.uid == "carol" and f'data-provider="{NAMED_PROVIDER}"' in page
    # This provider is configured to trust email_verified: the address is the profile's.
    assert identity.details.email_verified is True
    assert identity.user.email == identity.details.email != ""


def test_link_to_an_existing_profile_and_get_a_token_from_the_vault(live_server, oidc_site):
    session = SiteSession(live_server.url)
    # The existing profile: signed up with (sandbox) GitHub.
    response = session.at_sandbox(session.start("github"), email="bob@example.com")
    _connections(session, response)
    bob = User.objects.get()

    page = _connections(
        session, session.sign_in_oidc("oidc", oidc_site.issuer, login="bob", page="/settings/connections/")
    )
    assert "Linked your Node IdP account" in page
    assert User.objects.count() == 1
    assert {i.provider for i in bob.social_auth.all()} == {"github", "oidc"}
    assert Activity.objects.filter(kind=AccountKind.LINKED, provider="oidc", user=bob).exists()

    token = vault.get_access_token(bob, "oidc", min_ttl=0)
    assert token.connection == "oidc" and token.account == _identity().pk
    answer = oidc_site.introspect(token.access_token)
    assert answer["active"] is True and answer["sub"] == "bob"
    assert answer["client_id"] == oidc_site.clients["oidc"][0]
    assert set(answer["scope"].split()) >= {"openid", "offline_access"}


def test_refresh_after_expiry_rotates_the_refresh_token(live_server, oidc_site):
    oidc_site.set_access_token_ttl(2)
    session = SiteSession(live_server.url)
    _connections(session, session.sign_in_oidc("oidc", oidc_site.issuer, login="dave"))
    dave = User.objects.get()
    token_set = TokenSet.objects.get(identity=_identity())
    old_access, old_refresh = stored_tokens(token_set)
    time.sleep(2.5)
    assert oidc_site.introspect(old_access)["active"] is False  # expired at the provider

    token = vault.get_access_token(dave, "oidc", min_ttl=1)
    new_access, new_refresh = stored_tokens(token_set)
    assert token.access_token == new_access != old_access
    assert new_refresh != old_refresh  # rotated, and the new one committed
    assert oidc_site.introspect(new_access)["active"] is True
    assert oidc_site.introspect(new_refresh, hint="refresh_token")["active"] is True
    # The refreshed ID token was for the same iss and sub (the context stays the original one).
    assert _identity().extra_data["_oidc_id_token_context"]["sub"] == "dave"
    # The provider no longer accepts the old refresh token.
    assert oidc_site.introspect(old_refresh, hint="refresh_token")["active"] is False
    reuse = oidc_site.refresh(old_refresh)
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"


def test_refreshed_id_token_is_checked_by_the_backend(live_server, oidc_site):
    session = SiteSession(live_server.url)
    _connections(session, session.sign_in_oidc("oidc", oidc_site.issuer, login="erin"))
    identity = _identity()
    _access, refresh = stored_tokens(TokenSet.objects.get(identity=identity))
    backend = load_backend(load_strategy(), "oidc", redirect_uri=None)
    assert isinstance(backend, OpenIdConnectAuth)
    response = backend.refresh_token(refresh)  # HTTP Basic, as the client is registered
    assert response["refresh_token"] != refresh and response["id_token"]
    claims = backend.validate_refreshed_id_token(
        response["id_token"],
        identity.uid,
        context=identity.extra_data["_oidc_id_token_context"],
        access_token=response["access_token"],
    )
    assert claims["sub"] == "erin" and claims["iss"] == oidc_site.issuer
    with pytest.raises(AuthResponseError) as refused:
        backend.validate_refreshed_id_token(response["id_token"], "someone-else")
    assert refused.value.code == "invalid_claim"


def test_disconnect_revokes_at_the_provider(live_server, oidc_site):
    session = SiteSession(live_server.url)
    _connections(session, session.at_sandbox(session.start("github"), email="frank@example.com"))
    _connections(
        session, session.sign_in_oidc("oidc", oidc_site.issuer, login="frank", page="/settings/connections/")
    )
    identity = _identity()
    access, refresh = stored_tokens(TokenSet.objects.get(identity=identity))
    assert oidc_site.introspect(access)["active"] is True
    assert oidc_site.introspect(refresh, hint="refresh_token")["active"] is True

    page = _connections(session, session.disconnect(identity.pk))
    assert "Removed your Node IdP account" in page
    assert not UserSocialAuth.objects.filter(provider="oidc").exists()
    # Revoked at the provider (RFC 7009), confirmed by its introspection (RFC 7662).
    assert oidc_site.introspect(refresh, hint="refresh_token")["active"] is False
    assert oidc_site.introspect(access)["active"] is False
    assert not TokenSet.objects.filter(provider="oidc").exists()
    assert Activity.objects.filter(kind=VaultKind.REVOKED, provider="oidc").exists()


def test_signing_key_rotation_between_two_sign_ins(live_server, oidc_site, monkeypatch):
    fetches: list[str] = []
    original = OpenIdConnectAuth.get_remote_jwks_keys

    def counting(self, uri=None):
        fetches.append(uri)
        return original(self, uri)

    monkeypatch.setattr(OpenIdConnectAuth, "get_remote_jwks_keys", counting)
    session = SiteSession(live_server.url)
    _connections(session, session.sign_in_oidc("oidc", oidc_site.issuer, login="grace"))
    assert len(fetches) == 1
    first_kid = oidc_site.signing_kids()[0]
    session.sign_out()

    kids = oidc_site.rotate_keys(drop_old=True)  # the old key is gone from the JWKS entirely
    assert kids[0] != first_kid and first_kid not in kids
    _connections(session, session.sign_in_oidc("oidc", oidc_site.issuer, login="grace"))
    assert len(fetches) == 2  # the unknown kid made exactly one refetch
    assert UserSocialAuth.objects.count() == 1 and User.objects.count() == 1
    assert Activity.objects.filter(kind=AccountKind.SIGNED_IN, provider="oidc").count() == 1


def test_agent_gets_a_fresh_token_through_the_agent_api(live_server, oidc_site):
    from vault.agents import create_agent_key

    oidc_site.set_access_token_ttl(2)
    session = SiteSession(live_server.url)
    _connections(session, session.sign_in_oidc("oidc", oidc_site.issuer, login="heidi"))
    heidi = User.objects.get()
    _row, key = create_agent_key(user=heidi, name="interop agent", providers=["oidc"])
    token_set = TokenSet.objects.get(identity=_identity())
    first_access, first_refresh = stored_tokens(token_set)
    time.sleep(2.5)

    answer = requests.post(
        f"{live_server.url}/api/v1/token",
        json={"connection": "oidc", "min_ttl": 1},
        headers={"Authorization": f"Bearer {key}"},
        timeout=20,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["connection"] == "oidc" and body["token_type"] == "Bearer"
    assert body["account"] == _identity().pk
    # Refreshed (with a rotated refresh token) on the way, and live at the provider.
    assert body["access_token"] != first_access
    assert stored_tokens(token_set)[1] != first_refresh
    introspection = oidc_site.introspect(body["access_token"])
    assert introspection["active"] is True and introspection["sub"] == "heidi"
