"""In real Chromium: staff revoke an agent key from the admin's change list, and the key stops working.

The agent-key admin is read-only (no add, change or delete forms); its "Revoke selected agent
keys" action must still be offered to staff who may change keys, and must work.
"""

from __future__ import annotations

import json

import pytest
from django.test import Client
from playwright.sync_api import expect

from accounts.models import User
from vault import agents
from vault.models import AgentKey

from .browser import chromium_page
from .flows import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

STAFF_PASSWORD = "pw-for-browser-tests-only-123"


def _token_status(key: str) -> tuple[int, dict]:
    response = Client().post(
        "/api/v1/token",
        json.dumps({"connection": "github"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    return response.status_code, response.json()


def test_staff_revoke_an_agent_key_from_the_admin_and_it_stops_working(live_server):
    sign_in(Client(), "github", email="alice@example.com", name="Alice")
    alice = User.objects.get(email="alice@example.com")
    row, key = agents.create_agent_key(user=alice, name="nightly bot", providers=["github"])
    agents.create_agent_key(user=alice, name="other bot", providers=["github"])
    assert _token_status(key)[0] == 200
    User.objects.create_superuser("root", "root@example.com", STAFF_PASSWORD)

    with chromium_page(live_server.url) as page:
        page.goto("/staff/login/?next=/admin/vault/agentkey/")
        page.get_by_label("Username").fill("root")
        page.get_by_label("Password").fill(STAFF_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Select agent key to view")).to_be_visible()

        listed = page.locator("#result_list tbody tr", has_text="nightly bot")
        listed.locator('input[name="_selected_action"]').check()
        page.get_by_role("combobox", name="Action").select_option(label="Revoke selected agent keys")
        page.get_by_role("button", name="Go").click()
        expect(page.get_by_text("Revoked 1 agent key(s).")).to_be_visible()

    status, body = _token_status(key)
    assert (status, body["error"]) == (401, "invalid_token")
    row.refresh_from_db()
    assert row.revoked_at is not None
    assert AgentKey.objects.get(name="other bot").revoked_at is None  # only the selected one
