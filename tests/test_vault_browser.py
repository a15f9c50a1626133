"""In real Chromium: connect sandbox Google with 120 s tokens, see the token's status, let it expire,
fetch a token through the Python API, and see "refreshed at" change on the page."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

import vault
from accounts.models import User
from vault.models import TokenSet

from .browser import chromium_page, sandbox_sign_in
from .vault_support import expire

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_token_status_and_refresh_seen_on_the_connections_page(live_server, settings):
    settings.SANDBOX_TOKEN_TTL = 120
    with chromium_page(live_server.url) as page:
        page.goto("/")
        page.get_by_role("button", name="Continue with Google").click()
        sandbox_sign_in(page, email="alice@example.com", name="Alice Liddell")
        expect(page).to_have_url(f"{live_server.url}/settings/connections/")
        google = page.locator('[data-provider="google-oauth2"]')
        expect(google.locator('[data-token-status="active"]')).to_contain_text("Active")
        expect(google.locator("[data-token-refreshed]")).to_have_text("never")
        expect(google.locator("[data-token-scopes]")).to_contain_text("userinfo.email")

        token_set = TokenSet.objects.get()
        assert 100 <= (token_set.expires_at - token_set.updated_at).total_seconds() <= 120
        first_expiry = google.locator("[data-token-expires] time").get_attribute("datetime")

        expire(token_set)  # as if the two minutes had passed
        page.reload()
        expect(google.locator("[data-token-expires]")).to_contain_text("expired")

        token = vault.get_access_token(User.objects.get(), "google-oauth2")
        assert 100 <= token.expires_in <= 120

        page.reload()
        token_set.refresh_from_db()
        expect(google.locator("[data-token-refreshed] time")).to_have_attribute(
            "datetime", token_set.refreshed_at.isoformat()
        )
        assert google.locator("[data-token-expires] time").get_attribute("datetime") != first_expiry
        expect(google.locator('[data-token-status="active"]')).to_be_visible()
        assert token.access_token not in page.content()
