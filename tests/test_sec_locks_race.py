"""Issue 20.2: a slow refresh racing a disconnect or a merge (one lock order; freshest tokens win).

An OpenID Connect token set is refreshed (the provider answers slowly, at its network edge) while
the person disconnects that identity, or confirms a merge that moves it. The refresh saves the
identity row (the new ID token's context) as well as the token set: before the lock order was one,
it locked the token set first and the identity last, while unlink and merge lock the identity
first, so PostgreSQL found a deadlock. Here no thread may fail, and the provider's newest tokens
are the ones revoked (disconnect) or kept on the moved identity, bound to its new owner (merge).

On PostgreSQL both refresh strategies race (the row lock it uses, and the lease); on SQLite the
lease runs (its write transactions are serial, so only the lease's window can race). Nothing is
skipped: the test selects its behaviour by database.
"""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from social_django.models import UserSocialAuth

import vault
from accounts.merging import merge_profiles
from accounts.models import User
from accounts.unlinking import unlink_identity
from vault import refresh as vault_refresh
from vault.models import TokenSet

from . import oidc_fixtures
from .flows import sign_in
from .vault_support import expire, stored_tokens

fake_op = oidc_fixtures.fake_op
fake_site = oidc_fixtures.fake_site

ROUNDS = 20
#: How long the provider takes to answer a refresh (after it issued the tokens).
PROVIDER_DELAY = 0.4

STRATEGIES = ["row_lock", "lease"] if "postgresql" in settings.DATABASES["default"]["ENGINE"] else ["lease"]


@pytest.fixture(params=STRATEGIES)
def strategy(request, monkeypatch):
    monkeypatch.setattr(vault_refresh, "uses_row_lock", lambda: request.param == "row_lock")
    return request.param


class SlowProvider:
    """The fake provider's network edge, answering refreshes slowly and recording revocations."""

    def __init__(self, op: oidc_fixtures.FakeProvider) -> None:
        self.op = op
        self.answered = threading.Event()
        self.fresh: dict[str, Any] = {}
        self.revoked: set[str] = set()
        self._original = op.answer
        op.answer = self.answer  # type: ignore[method-assign]
        # OpenID Connect Core 12.2: a refreshed ID token keeps the original ``auth_time``.
        self._auth_time: dict[str, int] = {}
        op.id_token = self.id_token

    def id_token(self, op, claims: dict[str, Any]) -> str:
        auth_time = self._auth_time.setdefault(op.sub, claims["auth_time"])
        return op.sign({**claims, "auth_time": auth_time})

    def reset(self) -> None:
        self.answered.clear()
        self.fresh = {}

    def answer(self, request):
        url = urlsplit(request.url or "")
        body = request.body.decode() if isinstance(request.body, bytes) else (request.body or "")
        form = {k: v[0] for k, v in parse_qs(body).items()}
        if url.path == "/token/revocation":
            self.revoked.add(form.get("token", ""))
        status, answer = self._original(request)
        if url.path == "/token" and form.get("grant_type") == "refresh_token" and status == 200:
            self.fresh = dict(answer)
            self.answered.set()  # the tokens exist at the provider; the answer is still on its way
            time.sleep(PROVIDER_DELAY)
        return status, answer


def _link_oidc(client: Client, op, *, sub: str) -> UserSocialAuth:
    op.sub = sub
    response = client.post("/login/oidc/")
    assert response.status_code == 302, response.content[:300]
    query = {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}
    op.authorize_query = query
    done = client.get("/complete/oidc/", {"code": "good-code", "state": query["state"], "iss": op.issuer})
    assert done.status_code == 302, done.content[:300]
    return UserSocialAuth.objects.get(provider="oidc", uid=sub)


def _race(provider: SlowProvider, *, user: User, action) -> tuple[dict[str, Any], list[BaseException]]:
    """The refresh (an agent's token request) in one thread, ``action`` in another once the
    provider has issued the new tokens; returns what the refresh got and any thread's failure."""
    outcome: dict[str, Any] = {}
    failures: list[BaseException] = []

    def fetch() -> None:
        try:
            outcome["token"] = vault.get_access_token(user, "oidc").access_token
        except vault.ConnectionRequired as error:
            outcome["error"] = error
        except BaseException as error:  # a deadlock, a lock timeout ...
            failures.append(error)
        finally:
            connection.close()

    def act() -> None:
        try:
            assert provider.answered.wait(timeout=15), "the refresh never reached the provider"
            action()
        except BaseException as error:
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=fetch), threading.Thread(target=act)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    return outcome, failures


def _wait_until(predicate, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.mark.django_db(transaction=True)
def test_slow_refresh_racing_disconnect_and_merge_never_deadlocks_and_keeps_the_newest_tokens(
    fake_site, strategy, capsys
):
    provider = SlowProvider(fake_site)
    outcomes: dict[str, int] = {}
    for round_number in range(ROUNDS):
        provider.reset()
        client = Client()
        sign_in(client, "github", email=f"person{round_number}@example.com")
        user = User.objects.get(social_auth__details__email=f"person{round_number}@example.com")
        identity = _link_oidc(client, fake_site, sub=f"sub-{strategy}-{round_number}")
        expire(identity.token_set)
        disconnect = round_number % 2 == 0

        if disconnect:
            outcome, failures = _race(
                provider, user=user, action=lambda: unlink_identity(user=user, identity_id=identity.pk)
            )
        else:
            sign_in(Client(), "google-oauth2", email=f"other{round_number}@example.com")
            into = User.objects.get(social_auth__details__email=f"other{round_number}@example.com")
            outcome, failures = _race(
                provider,
                user=user,
                action=lambda: merge_profiles(into=into, source=user, move_identity_ids=None),
            )

        assert failures == [], f"round {round_number} ({strategy}): {failures!r}"
        fresh = provider.fresh
        assert fresh.get("access_token") and fresh.get("refresh_token")
        kind = "token" if "token" in outcome else "gone"
        if kind == "token":
            assert outcome["token"] == fresh["access_token"]
        if disconnect:
            # The provider's newest tokens are revoked, whoever won the race; nothing is left here.
            assert not UserSocialAuth.objects.filter(pk=identity.pk).exists()
            assert _wait_until(lambda: {fresh["access_token"], fresh["refresh_token"]} <= provider.revoked), (
                f"round {round_number} ({strategy}): the newest tokens were not revoked"
            )
            assert _wait_until(lambda: not TokenSet.objects.filter(uid=identity.uid).exists())
        else:
            # The moved identity keeps the newest tokens, bound to (and readable for) its new owner.
            moved = TokenSet.objects.get(identity_id=identity.pk)
            assert UserSocialAuth.objects.get(pk=identity.pk).user_id == into.pk
            assert moved.owner_id == into.pk
            assert stored_tokens(moved) == (fresh["access_token"], fresh["refresh_token"])
            assert fresh["refresh_token"] not in provider.revoked
            assert vault.get_access_token(into, "oidc").access_token == fresh["access_token"]
        key = f"{'disconnect' if disconnect else 'merge'}/{kind}"
        outcomes[key] = outcomes.get(key, 0) + 1
    with capsys.disabled():
        print(f"\n[lock order race] {connection.vendor}/{strategy}: {ROUNDS} rounds, outcomes {outcomes}")
