"""Suggested linking in real Chromium: two sign-ins with one address end on one profile."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts.models import User
from sandbox import state as sandbox_state
from vault import get_access_token

from .browser import chromium_page, sandbox_sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_same_verified_email_suggests_linking_and_ends_on_one_profile(live_server):
    with chromium_page(live_server.url) as page:
        page.goto("/")
        page.get_by_role("button", name="Continue with GitHub").click()
        sandbox_sign_in(page, email="alice@example.com", name="Alice")
        expect(page.locator('[data-provider="github"]')).to_have_count(1)
        page.get_by_role("button", name="Sign out").click()

        page.get_by_role("button", name="Continue with Google").click()
        sandbox_sign_in(page, email="alice@example.com", name="Alice G")
        expect(
            page.get_by_role("heading", name="A profile with alice@example.com already exists")
        ).to_be_visible()

        page.get_by_role("button", name="Sign in with GitHub to link").click()
        sandbox_sign_in(page, email="alice@example.com", name="Alice")
        expect(page.get_by_role("heading", name="Link your Google account")).to_be_visible()
        page.get_by_role("button", name="Link Google account").click()
        sandbox_sign_in(page, email="alice@example.com", name="Alice G")
        expect(page).to_have_url(f"{live_server.url}/settings/connections/")
        expect(page.locator("[data-provider]")).to_have_count(2)

    alice = User.objects.get()
    assert sorted(alice.social_auth.values_list("provider", flat=True)) == ["github", "google-oauth2"]
    for connection in ("github", "google-oauth2"):
        token = get_access_token(alice, connection)
        provider = "github" if connection == "github" else "google"
        assert sandbox_state.token_is_active(provider, token.access_token)
