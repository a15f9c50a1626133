"""Issue 14 item 3 (the API's part): errors an agent's developer can act on at once.

A connection name the site does not know is answered with the names it does know; a JSON body sent
with a form's Content-Type (what ``curl -d`` does) is told exactly that, not "use grant_type".
"""

from __future__ import annotations

import json

import pytest
from django.test import Client

from accounts.models import User
from vault import agents

from .flows import sign_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def key(client) -> str:
    sign_in(client, "github", email="alice@example.com")
    return agents.create_agent_key(user=User.objects.get(), name="bot", providers=["github"])[1]


def test_an_unknown_connection_is_answered_with_the_names_there_are(key):
    response = Client().post(
        "/api/v1/token",
        json.dumps({"connection": "google"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    body = response.json()
    assert (response.status_code, body["error"]) == (400, "invalid_request")
    assert "'google'" in body["error_description"]
    assert "google-oauth2 (Google)" in body["error_description"]
    assert "github (GitHub)" in body["error_description"]


def test_json_sent_as_a_form_gets_a_json_hint(key):
    response = Client().post(
        "/api/v1/token",
        json.dumps({"connection": "github"}),
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    body = response.json()
    assert (response.status_code, body["error"]) == (400, "invalid_request")
    assert "Content-Type: application/json" in body["error_description"]
    assert "grant_type" not in body["error_description"]


def test_json_sent_as_a_form_with_a_bad_key_is_a_bad_key_first():
    response = Client().post(
        "/api/v1/token",
        json.dumps({"connection": "github"}),
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION="Bearer lsk_not-a-real-key",
    )
    assert (response.status_code, response.json()["error"]) == (401, "invalid_token")


def test_a_real_rfc8693_form_still_works(key):
    response = Client().post(
        "/api/v1/token",
        {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": key,
            "connection": "github",
        },
    )
    assert response.status_code == 200, response.content
    assert response.json()["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
