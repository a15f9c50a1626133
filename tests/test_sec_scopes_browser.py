"""Issue 14.2 in real Chromium: approving ``repo`` for an agent survives signing out and in again."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import expect

from accounts.models import User
from vault import agents
from vault.models import TokenSet

from .browser import chromium_page, sandbox_sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def agent_token(site: str, key: str) -> tuple[int, dict]:
    """What the agent gets when it asks for a GitHub token with ``repo`` (a real HTTP call)."""
    request = urllib.request.Request(
        f"{site}/api/v1/token",
        data=json.dumps({"connection": "github", "scopes": ["repo"]}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def test_an_approved_scope_survives_sign_out_and_sign_in(live_server, settings):
    settings.SITE_URL = live_server.url
    with chromium_page(live_server.url) as page:
        page.goto("/")
        page.get_by_role("button", name="Continue with GitHub").click()
        sandbox_sign_in(page, email="alice@example.com", name="Alice")
        _row, key = agents.create_agent_key(
            user=User.objects.get(email="alice@example.com"), name="coder", providers=["github"]
        )

        status, answer = agent_token(live_server.url, key)
        assert (status, answer["error"]) == (403, "insufficient_scope")
        page.goto(answer["authorize_url"])
        page.get_by_role("button", name="Approve and continue to GitHub").click()
        sandbox_sign_in(page, email="alice@example.com", name="Alice")
        page.get_by_role("button", name="Let the agent continue").click()
        expect(page.get_by_role("heading", name="Done: the agent can continue")).to_be_visible()
        assert agent_token(live_server.url, key)[0] == 200

        page.get_by_role("button", name="Sign out").click()
        page.goto("/")
        page.get_by_role("button", name="Continue with GitHub").click()
        sandbox_sign_in(page, email="alice@example.com", name="Alice")
        page.goto("/settings/connections/")
        expect(page.locator("[data-token-scopes]")).to_contain_text("repo")
        expect(page.locator("[data-token-narrowed]")).to_have_count(0)

    status, answer = agent_token(live_server.url, key)
    assert status == 200, answer
    assert "repo" in answer["scope"].split()
    assert "repo" in TokenSet.objects.get(provider="github").scopes
