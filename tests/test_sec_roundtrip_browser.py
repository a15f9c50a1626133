"""In real Chromium: sign-in and linking still work with PKCE S256 on GitHub and Google (issue 12.1),
and a round trip survives a forged callback loaded in the same browser meanwhile (issue 20.10)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from accounts.models import User

from .browser import chromium_page, sandbox_sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _authorize_query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def test_sign_in_and_linking_work_with_s256_challenges(live_server):
    with chromium_page(live_server.url) as page:
        page.goto("/")
        page.get_by_role("button", name="Continue with GitHub").click()
        expect(page.get_by_role("heading", name="Sandbox GitHub")).to_be_visible()
        github = _authorize_query(page.url)
        assert github["code_challenge_method"] == "S256"
        assert len(github["code_challenge"]) == 43
        assert github["redirect_uri"] == f"{live_server.url}/complete/github/"
        sandbox_sign_in(page, email="alice@example.com", name="Alice Liddell")
        expect(page).to_have_url(f"{live_server.url}/settings/connections/")

        page.get_by_role("button", name="Connect Google").click()
        expect(page.get_by_role("heading", name="Sandbox Google")).to_be_visible()
        google = _authorize_query(page.url)
        assert google["code_challenge_method"] == "S256"
        assert google["code_challenge"] != github["code_challenge"]
        # Someone makes this browser load a forged callback while the person is at Google.
        forged = page.context.new_page()
        forged.goto(f"{live_server.url}/complete/google-oauth2/?code=forged&state=forged")
        forged.close()
        sandbox_sign_in(page, email="alice.g@example.com", name="Alice at Google")
        expect(page.get_by_text("Linked your Google account")).to_be_visible()
        expect(page.locator("[data-provider]")).to_have_count(2)
    assert sorted(User.objects.get().social_auth.values_list("provider", flat=True)) == [
        "github",
        "google-oauth2",
    ]


def test_a_browser_on_another_host_of_the_site_is_moved_to_site_urls_host_and_signs_in(live_server, settings):
    # `make run` (DEBUG): SITE_URL names one host; the person types the other (localhost vs 127.0.0.1).
    settings.DEBUG = True
    other = live_server.url.replace("localhost", "127.0.0.1")
    assert other != live_server.url
    with chromium_page(other) as page:
        page.goto(f"{other}/")
        expect(page).to_have_url(f"{live_server.url}/")
        page.get_by_role("button", name="Continue with GitHub").click()
        assert _authorize_query(page.url)["redirect_uri"] == f"{live_server.url}/complete/github/"
        sandbox_sign_in(page, email="alice@example.com")
        expect(page).to_have_url(f"{live_server.url}/settings/connections/")
        expect(page.locator('[data-provider="github"]')).to_have_count(1)
