"""Issue 16, interop: a third-party IdP (pysaml2, run locally) in real Chromium.

Sign in with the company, link GitHub (sandbox) to that profile, sign out, sign in with GitHub:
same profile, both identities shown. The IdP rotates its signing certificate (old and new in its
metadata, re-read by `saml_connection refresh`) and sign-in still works. A connection disabled in
the admin refuses at once. The IdP is on ``localhost`` and the site on ``127.0.0.1``: its answer is
a cross-site POST, as in production.
"""

from __future__ import annotations

import copy

import pytest
from django.core.management import call_command
from django.test import Client
from playwright.sync_api import expect
from social_django.models import UserSocialAuth

from accounts.models import User

from .browser import chromium_page, sandbox_sign_in
from .saml_idp import PysamlIdp
from .saml_support import use_sp_keys

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
STAFF_PASSWORD = "pw-for-tests-only-123"


@pytest.fixture
def idp(tmp_path, live_server, settings):
    use_sp_keys(settings)
    server = PysamlIdp(tmp_path).start()
    # The site's CSP lets a sign-in form redirect only to https origins (and this test's IdP).
    policy = copy.deepcopy(settings.CONTENT_SECURITY_POLICY)
    policy["DIRECTIVES"]["form-action"] = [*policy["DIRECTIVES"]["form-action"], server.base]
    settings.CONTENT_SECURITY_POLICY = policy
    server.metadata_file = tmp_path / "acme-idp.xml"
    server.metadata_file.write_text(server.metadata())
    call_command(
        "saml_connection", "add", "acme", "--name", "Acme Corp",
        "--metadata", str(server.metadata_file), "--domain", "acme.test",
    )  # fmt: skip
    server.trust(Client().get("/saml/acme/metadata/").content.decode())
    yield server
    server.stop()


def company_sign_in(page, *, username: str = "alice", name: str = "Alice Acme", submit: bool = True) -> None:
    page.goto("/")
    page.get_by_role("button", name="Continue with Company").click()
    expect(page.get_by_role("heading", name="Sign in with your company")).to_be_visible()
    page.get_by_label("Work email").fill(f"{username}@acme.test")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Acme sign-in (pysaml2)")).to_be_visible()
    if not submit:
        return
    page.get_by_label("Username").fill(username)
    page.get_by_label("Full name").fill(name)
    page.get_by_role("button", name="Sign in").click()


def test_company_sign_in_link_github_and_come_back_with_github(live_server, idp):
    with chromium_page(live_server.url) as page:
        company_sign_in(page)
        expect(page).to_have_url(f"{live_server.url}/settings/connections/")
        expect(page.locator('[data-provider="saml"]')).to_contain_text("Alice Acme (Acme Corp)")

        page.get_by_role("button", name="Connect GitHub").click()
        sandbox_sign_in(page, email="alice@example.com", name="Alice at GitHub")
        expect(page.get_by_text("Linked your GitHub account")).to_be_visible()

        page.get_by_role("button", name="Sign out").click()
        page.get_by_role("button", name="Continue with GitHub").click()
        sandbox_sign_in(page, email="alice@example.com", name="Alice at GitHub")
        expect(page).to_have_url(f"{live_server.url}/settings/connections/")
        expect(page.locator('[data-provider="saml"]')).to_have_count(1)
        expect(page.locator('[data-provider="github"]')).to_have_count(1)
    assert User.objects.count() == 1
    assert UserSocialAuth.objects.get(provider="saml").uid == "acme:pysaml2-alice"


def test_the_idp_rotates_its_signing_certificate_and_sign_in_still_works(live_server, idp):
    with chromium_page(live_server.url) as page:
        company_sign_in(page)
        expect(page).to_have_url(f"{live_server.url}/settings/connections/")
        page.get_by_role("button", name="Sign out").click()

        idp.rotate()  # signs with the new key; its metadata lists old and new
        idp.metadata_file.write_text(idp.metadata())
        call_command("saml_connection", "refresh", "acme")
        company_sign_in(page)
        expect(page).to_have_url(f"{live_server.url}/settings/connections/")
        expect(page.locator('[data-provider="saml"]')).to_have_count(1)
    assert User.objects.count() == 1


def test_a_connection_disabled_in_the_admin_refuses_at_once(live_server, idp):
    User.objects.create_superuser("root", "root@example.com", STAFF_PASSWORD)
    with chromium_page(live_server.url) as page:
        staff = page.context.browser.new_context(base_url=live_server.url).new_page()
        staff.goto("/staff/login/?next=/admin/enterprise/enterpriseconnection/")
        staff.get_by_label("Username").fill("root")
        staff.get_by_label("Password").fill(STAFF_PASSWORD)
        staff.get_by_role("button", name="Sign in").click()
        staff.get_by_role("link", name="Acme Corp").click()

        company_sign_in(page, submit=False)  # the person is at the IdP's form

        staff.get_by_label("Enabled").uncheck()
        staff.get_by_role("button", name="Save", exact=True).click()
        expect(staff.get_by_text("was changed successfully")).to_be_visible()

        page.get_by_label("Username").fill("alice")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Sign-in refused")).to_be_visible()
        expect(page.get_by_text("Sign-in with Acme Corp is turned off")).to_be_visible()
    assert not UserSocialAuth.objects.exists()
