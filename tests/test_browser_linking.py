"""The whole linking journey in real Chromium: sign in, connect, disconnect, sign out, sign in again."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts.models import User

from .browser import chromium_page, sandbox_sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_sign_in_connect_disconnect_and_sign_in_again(live_server):
    with chromium_page(live_server.url) as page:
        page.goto("/")
        page.get_by_role("button", name="Continue with GitHub").click()
        expect(page.get_by_role("heading", name="Sandbox GitHub")).to_be_visible()
        sandbox_sign_in(page, email="alice@example.com", name="Alice Liddell")
        expect(page).to_have_url(f"{live_server.url}/settings/connections/")
        expect(page.locator('[data-provider="github"]')).to_have_count(1)

        page.get_by_role("button", name="Connect Google").click()
        sandbox_sign_in(page, email="alice.g@example.com", name="Alice at Google")
        expect(page.get_by_text("Linked your Google account")).to_be_visible()
        expect(page.locator("[data-provider]")).to_have_count(2)
        expect(page.locator('[data-provider="google-oauth2"]')).to_contain_text("alice.g@example.com")

        page.locator('[data-provider="google-oauth2"]').get_by_role("link", name="Disconnect").click()
        page.get_by_role("button", name="Disconnect").click()
        expect(page.get_by_text("Removed your Google account")).to_be_visible()
        expect(page.locator("[data-provider]")).to_have_count(1)

        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

        page.get_by_role("button", name="Continue with GitHub").click()
        sandbox_sign_in(page, email="alice@example.com", name="Alice Liddell")
        expect(page).to_have_url(f"{live_server.url}/settings/connections/")
        expect(page.locator('[data-provider="github"]')).to_have_count(1)
        expect(page.locator(".who")).to_have_text("Alice Liddell")
    assert User.objects.count() == 1


def test_deny_at_the_provider_shows_a_message_and_links_nothing(live_server):
    with chromium_page(live_server.url) as page:
        page.goto("/")
        page.get_by_role("button", name="Continue with GitHub").click()
        sandbox_sign_in(page, email="alice@example.com")
        page.get_by_role("button", name="Connect Google").click()
        sandbox_sign_in(page, email="alice.g@example.com", deny=True)
        expect(page.get_by_text("You cancelled at Google")).to_be_visible()
        expect(page.locator("[data-provider]")).to_have_count(1)
    assert User.objects.get().social_auth.count() == 1
