"""Issue 15 follow-ups: applications' exchanges are rate-limited like agent keys, and authorization
codes are stored only as their SHA-256."""

from __future__ import annotations

import ast
import hashlib
import importlib
import inspect
import json
import logging

import pytest
from django.apps import apps
from django.test import Client
from oauth2_provider import oauth2_validators
from oauth2_provider.models import Grant

from accounts.models import User
from activity.models import Activity
from authserver.validator import SiteValidator
from vault import agents, staged_records
from vault.activity_kinds import VaultKind

from .authserver_support import REDIRECT, basic, exchange, get_code, tokens, web_app
from .flows import sign_in

pytestmark = pytest.mark.django_db


# Windows of an hour: a test never straddles two (a minute's window would, now and then).
HOUR = 3600


@pytest.fixture
def signed_in_app(client):
    """Alice signed in with GitHub, a web application she allowed, and its access token."""
    sign_in(client, "github", email="alice@example.com")
    app, secret = web_app()
    code, verifier, _query = get_code(client, app)
    issued = tokens(client, app, secret, code, verifier)
    return app, secret, issued["access_token"]


def hand_outs(app) -> int:
    return Activity.objects.filter(kind=VaultKind.TOKEN_ISSUED, data__client_id=app.client_id).count()


def test_exchanges_past_the_application_limit_answer_429_with_retry_after_and_hand_out_nothing(
    client, settings, signed_in_app, limit_cache
):
    app, secret, access = signed_in_app
    settings.VAULT_RATE_LIMITS = {"key": (3, HOUR)}
    answers = [exchange(client, app, secret, access) for _ in range(4)]
    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    body = refused.json()
    assert body["error"] == "temporarily_unavailable" and body["linking_site_error"] == "rate_limited"
    assert "access_token" not in body and "application" in body["error_description"]
    assert 1 <= int(refused.headers["Retry-After"]) <= HOUR and body["retry_after"] >= 1
    assert "no-store" in refused.headers["Cache-Control"]
    # The vault's endpoint answers the same for an application's token: the limit is the caller's.
    at_api = exchange(client, app, secret, access, path="/api/v1/token")
    assert at_api.status_code == 429 and at_api.json()["linking_site_error"] == "rate_limited"
    assert at_api.json()["retry_after"] >= 1 and "access_token" not in at_api.json()
    assert 1 <= int(at_api.headers["Retry-After"]) <= HOUR
    assert hand_outs(app) == 3


def test_another_application_has_a_window_of_its_own(client, settings, signed_in_app):
    app, secret, access = signed_in_app
    settings.VAULT_RATE_LIMITS = {"key": (1, HOUR)}
    assert [exchange(client, app, secret, access).status_code for _ in range(2)] == [200, 429]
    other, other_secret = web_app(name="Other Agent")
    code, verifier, _query = get_code(client, other)
    other_access = tokens(client, other, other_secret, code, verifier)["access_token"]
    assert exchange(client, other, other_secret, other_access).status_code == 200
    assert (hand_outs(app), hand_outs(other)) == (1, 1)


def test_a_persons_agent_keys_and_applications_share_their_limit(
    client, settings, signed_in_app, limit_cache
):
    app, secret, access = signed_in_app
    settings.VAULT_RATE_LIMITS = {"user": (3, HOUR)}
    alice = User.objects.get(email="alice@example.com")
    _row, key = agents.create_agent_key(user=alice, name="helper bot", providers=["github"])
    for _ in range(2):
        answer = Client().post(
            "/api/v1/token",
            json.dumps({"connection": "github"}),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {key}",
        )
        assert answer.status_code == 200, answer.content
    assert [exchange(client, app, secret, access).status_code for _ in range(2)] == [200, 429]
    assert hand_outs(app) == 1
    staged_records.drain_all()  # with Redis, the agent key's hand-outs wait there until moved
    assert Activity.objects.filter(kind=VaultKind.TOKEN_ISSUED, user=alice).count() == 3


def test_refused_clients_and_subject_tokens_are_limited_per_address_but_a_good_client_is_served(
    client, settings, signed_in_app, limit_cache
):
    app, secret, access = signed_in_app
    settings.VAULT_RATE_LIMITS = {"auth_failure": (2, HOUR)}
    wrong_secret = exchange(client, app, "not-the-secret", access)
    assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"
    bad_subject = exchange(client, app, secret, "not-a-token-we-issued")
    assert bad_subject.status_code == 400 and bad_subject.json()["error"] == "invalid_grant"
    waited = exchange(client, app, "still-not-the-secret", access)
    assert waited.status_code == 429 and waited.json()["linking_site_error"] == "rate_limited"
    assert 1 <= int(waited.headers["Retry-After"]) <= HOUR
    assert exchange(client, app, secret, "guess-again").status_code == 429
    # The application with its secret and a good token is not refused for its address's failures.
    assert exchange(client, app, secret, access).status_code == 200
    assert exchange(client, app, secret, access, REMOTE_ADDR="10.9.9.10").status_code == 200
    assert hand_outs(app) == 2


def test_authorization_codes_are_stored_hashed_redeem_once_and_the_stored_value_redeems_nothing(client):
    sign_in(client, "github", email="alice@example.com")
    app, secret = web_app()
    code, verifier, _query = get_code(client, app)
    stored = Grant.objects.get(application=app).code
    assert code not in stored and stored == hashlib.sha256(code.encode()).hexdigest()

    # Someone who read the database cannot redeem the row's value.
    leaked = client.post(
        "/oauth/token/",
        {
            "grant_type": "authorization_code",
            "code": stored,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
        **basic(app, secret),
    )
    assert leaked.status_code == 400 and leaked.json()["error"] == "invalid_grant"

    issued = tokens(client, app, secret, code, verifier)
    assert issued["access_token"] and issued["refresh_token"] and issued["id_token"]
    assert not Grant.objects.filter(application=app).exists()
    replay = client.post(
        "/oauth/token/",
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
        **basic(app, secret),
    )
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"


def test_no_log_line_carries_the_code_even_at_debug(client, caplog):
    caplog.set_level(logging.DEBUG)
    sign_in(client, "github", email="alice@example.com")
    app, secret = web_app()
    code, verifier, _query = get_code(client, app)
    tokens(client, app, secret, code, verifier)
    assert caplog.records and code not in caplog.text


def test_a_wrong_verifier_or_redirect_is_still_refused_with_hashed_codes(client):
    sign_in(client, "github", email="alice@example.com")
    app, secret = web_app()
    code, verifier, _query = get_code(client, app)
    wrong = verifier[:-1] + ("y" if verifier.endswith("x") else "x")  # never the verifier itself
    for changed in ({"code_verifier": wrong}, {"redirect_uri": REDIRECT + "/"}):
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
        refused = client.post(
            "/oauth/token/", {**data, "code_verifier": verifier, **changed}, **basic(app, secret)
        )
        assert refused.status_code == 400, changed


def test_a_code_stored_in_plaintext_before_the_upgrade_is_hashed_by_the_migration_and_still_redeems(client):
    sign_in(client, "github", email="alice@example.com")
    app, secret = web_app()
    code, verifier, _query = get_code(client, app)
    Grant.objects.filter(application=app).update(code=code)  # as stored before codes were hashed
    migration = importlib.import_module("authserver.migrations.0002_hash_stored_authorization_codes")
    migration.hash_plaintext_codes(apps, None)
    migration.hash_plaintext_codes(apps, None)  # a second run leaves digests alone
    assert Grant.objects.get(application=app).code == hashlib.sha256(code.encode()).hexdigest()
    assert tokens(client, app, secret, code, verifier)["access_token"]


def _finds_grant_by_code(node: ast.FunctionDef) -> bool:
    source = ast.unparse(node)
    return "Grant.objects" in source and ("code=code" in source or "code=request.code" in source)


def test_every_toolkit_method_that_finds_a_grant_by_code_is_given_the_digest():
    """A toolkit upgrade that looks a grant up somewhere new would miss the digest: this names it."""
    tree = ast.parse(inspect.getsource(oauth2_validators))
    toolkit = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "OAuth2Validator")
    lookups = {n.name for n in toolkit.body if isinstance(n, ast.FunctionDef) and _finds_grant_by_code(n)}
    assert {"validate_code", "invalidate_authorization_code", "get_code_challenge"} <= lookups
    # Creating the row is reached through save_authorization_code, which hands it the digest.
    lookups.discard("_create_authorization_code")
    assert "save_authorization_code" in SiteValidator.__dict__
    assert lookups <= set(SiteValidator.__dict__), lookups - set(SiteValidator.__dict__)
