"""Issue 13.3: one scope grammar (RFC 6749 scope tokens) and one set of bounds for the agent API,
the connect page and agent keys; one ``min_ttl`` limit for the API and the Python API.

Before, the connect page's ``clean_scopes`` kept only ``[A-Za-z0-9:._/\\-]`` while
``/api/v1/connect-requests`` accepted every RFC 6749 scope token: a request naming ``a+b`` was
accepted, its "Approve" button asked the provider for less, and it could never complete.
"""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

import vault
from accounts import scopes as grammar
from accounts.models import User
from accounts.scopes import clean_scopes
from vault import agents, limits
from vault import scopes as vault_scopes
from vault.models import AgentKey, ConnectRequest
from vault.openapi import document

from .flows import round_trip, sign_in

pytestmark = pytest.mark.django_db

# Printable ASCII the old page grammar refused, RFC 6749 allows (%x21 / %x23-5B / %x5D-7E).
ODD_SCOPES = [
    "calendar+write",
    "repo!admin",
    "team=ops",
    "x~y",
    "a#b",
    "{c}",
    "d|e",
    "@me",
    "$5%^&*()[];'<>?",
]


@pytest.fixture
def alice(client) -> User:
    sign_in(client, "github", email="alice@example.com", name="Alice")
    return User.objects.get(email="alice@example.com")


@pytest.fixture
def key(alice) -> str:
    return agents.create_agent_key(user=alice, name="helper bot", providers=["github", "google-oauth2"])[1]


def _api(key: str, path: str, body: dict) -> tuple[int, dict]:
    response = Client().post(
        path, json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}"
    )
    return response.status_code, response.json()


@pytest.mark.parametrize("odd", ODD_SCOPES)
def test_a_connect_request_for_any_rfc6749_scope_completes_through_the_connect_page(client, alice, key, odd):
    status, body = _api(
        key, "/api/v1/connect-requests", {"connection": "google-oauth2", "scopes": ["email", odd]}
    )
    assert status == 201, body
    request_id = body["id"]

    # The person opens the request's page and presses "Approve": exactly the form's fields go to begin.
    page = client.get(f"/connect/{request_id}/").content.decode()
    form = re.search(r'<form method="post" action="/login/google-oauth2/">(.*?)</form>', page, re.S).group(1)
    fields: dict[str, list[str]] = {}
    for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form):
        fields.setdefault(name, []).append(
            value.replace("&amp;", "&")
            .replace("&#x27;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", '"')
        )
    assert odd in fields["scope"]
    result = round_trip(client, "google-oauth2", email="alice@example.com", **fields)

    assert odd in result.authorize_query["scope"].split(), "the provider was asked for the agent's scope"
    assert result.location == f"/connect/{request_id}/done/"
    done = client.post(result.location)
    assert done.status_code == 200 and "the agent can continue" in done.content.decode()
    assert ConnectRequest.objects.get(pk=request_id).status == "completed"

    # And the agent's token now carries it.
    status, token = _api(key, "/api/v1/token", {"connection": "google-oauth2", "scopes": [odd]})
    assert status == 200, token
    assert odd in token["scope"].split()


def test_the_grant_more_offer_on_the_connections_page_keeps_every_rfc6749_scope(client, alice):
    query = "&".join(f"scope={s}" for s in ["repo!admin", "team%3Dops", "calendar%2Bwrite"])
    html = client.get(f"/settings/connections/?connect=google-oauth2&{query}").content.decode()
    for scope in ("repo!admin", "team=ops", "calendar+write"):
        assert f'value="{scope}"' in html


def test_pages_api_and_keys_refuse_and_accept_the_same_names():
    good = [
        "read:user",
        "https://www.googleapis.com/auth/drive.readonly",
        *ODD_SCOPES,
        "x" * grammar.MAX_SCOPE_LENGTH,
    ]
    bad = ['say"hi"', "back\\slash", "caf\u00e9", "x" * (grammar.MAX_SCOPE_LENGTH + 1), "nul\x00"]
    assert all(grammar.is_scope_token(s) for s in good)
    assert not grammar.is_scope_token("tab\there")  # a page splits it into two names; the API refuses it
    assert not any(grammar.is_scope_token(s) for s in bad)
    assert clean_scopes(good + bad) == good  # the page keeps exactly the tokens, nothing else
    assert vault_scopes.normalise_requested(good) == good  # the API and keys read them alike


def test_the_page_keeps_as_many_scopes_as_the_api_accepts(key):
    many = [f"scope{n}" for n in range(grammar.MAX_SCOPES)]
    status, body = _api(key, "/api/v1/connect-requests", {"connection": "google-oauth2", "scopes": many})
    assert status == 201, body
    assert clean_scopes(body["scopes"]) == sorted(many)  # nothing dropped on the way to the provider
    status, body = _api(
        key, "/api/v1/connect-requests", {"connection": "google-oauth2", "scopes": [*many, "more"]}
    )
    assert status == 400 and body["error"] == "invalid_request"


def test_a_key_keeps_every_scope_limit_it_was_given(alice):
    many = [f"scope{n}" for n in range(grammar.MAX_SCOPES - 1)]
    row, _ = agents.create_agent_key(
        user=alice, name="wide", providers=["github"], scopes={"github": [*many, "team=ops"]}
    )
    assert AgentKey.objects.get(pk=row.pk).scopes["github"] == [*many, "team=ops"]  # before: 30 kept
    with pytest.raises(agents.AgentKeyError):
        agents.create_agent_key(user=alice, name="bad", providers=["github"], scopes={"github": ['say"hi"']})


def test_one_min_ttl_limit_for_the_api_the_form_and_python(alice, key):
    top = limits.MAX_MIN_TTL
    assert _api(key, "/api/v1/token", {"connection": "github", "min_ttl": top})[0] == 200
    status, body = _api(key, "/api/v1/token", {"connection": "github", "min_ttl": top + 1})
    assert status == 400 and str(top) in body["error_description"]
    form = Client().post(
        "/api/v1/token",
        {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": key,
            "connection": "github",
            "min_ttl": str(top + 1),
        },
    )
    assert form.status_code == 400 and str(top) in form.json()["error_description"]
    assert vault.get_access_token(alice, "github", min_ttl=top).access_token
    with pytest.raises(vault.TokenVaultError) as refused:
        vault.get_access_token(alice, "github", min_ttl=top + 1)
    assert refused.value.code == "invalid_request" and str(top) in refused.value.message
    token_body = document()["paths"]["/api/v1/token"]["post"]["requestBody"]["content"]
    assert token_body["application/json"]["schema"]["properties"]["min_ttl"]["maximum"] == top
