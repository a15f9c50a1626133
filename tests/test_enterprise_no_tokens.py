"""A company (SAML) identity is a way in and a linked identity, never a vault source.

SAML gives no OAuth tokens, so the vault neither shows a token status ("Reconnect") for it, nor offers
it to agents (key form, API, OpenAPI), nor stores anything at sign-in.
"""

from __future__ import annotations

import json
import logging

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User
from vault import agents
from vault.models import TokenSet

from .flows import sign_in
from .test_enterprise_flows import acme, saml_sign_in  # noqa: F401  (the connection fixture)

pytestmark = pytest.mark.django_db


def test_a_company_identity_shows_no_token_status_and_stores_nothing(client, acme, caplog):  # noqa: F811
    sign_in(client, "github", email="alice@example.com")
    with caplog.at_level(logging.WARNING, logger="vault"):
        assert saml_sign_in(client).status_code == 302
    assert not [r for r in caplog.records if r.name.startswith("vault") and r.levelno >= logging.WARNING]
    assert not TokenSet.objects.filter(provider="saml").exists()

    page = client.get(reverse("accounts:connections")).content.decode()
    company = page[page.index('data-provider="saml"') :]
    company = company[: company.index("</li>")]
    assert "Reconnect" not in company and "No token" not in company
    # GitHub's card still shows its tokens.
    github = page[page.index('data-provider="github"') :]
    assert "Reconnect" not in github[: github.index("</li>")]


def test_agents_cannot_ask_for_the_company_connection(client, acme):  # noqa: F811
    sign_in(client, "github", email="alice@example.com")
    saml_sign_in(client)
    alice = User.objects.get()
    with pytest.raises(agents.AgentKeyError):
        agents.create_agent_key(user=alice, name="bot", providers=["saml"])
    _, key = agents.create_agent_key(user=alice, name="bot", providers=["github"])
    response = Client().post(
        "/api/v1/token",
        json.dumps({"connection": "saml"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_request" and "github" in body["error_description"]
    assert "saml" not in body["error_description"].split("connections here are")[-1]

    form = client.get(reverse("vault:agents")).content.decode()
    assert 'value="github"' in form and 'value="saml"' not in form
    spec = client.get("/api/v1/openapi.json").json()
    assert "saml" not in json.dumps(spec)
