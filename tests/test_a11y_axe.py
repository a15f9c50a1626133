"""Accessibility: axe-core (npm, locked in tests/a11y) in real Chromium over every page of the site,
at a phone's width (375 px) and a desktop's (1280 px). Any violation fails, with what and where.

Add a page with one line in ``PAGES`` (signed out, as a person, or as staff; ``{names}`` are the
ids ``_world()`` makes). Pages only a flow reaches (the sandbox's sign-in pages, the existing-profile
question, the merge steps, the CSRF failure) are checked on the way in the journeys below; the
admin's change lists and change forms are found from the admin's own registry.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.contrib import admin
from django.db import connections
from django.test import Client
from django.urls import reverse
from playwright.sync_api import expect, sync_playwright

from accounts.models import User
from vault import agents, connect

from .browser import CHROMIUM, CHROMIUM_ARGS, sandbox_sign_in
from .flows import round_trip, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ANON, PERSON, STAFF = "signed out", "person", "staff"

PAGES = [
    ("sign-in", ANON, "/"),
    ("staff sign-in", ANON, "/staff/login/"),
    ("page not found", ANON, "/no-such-page/"),
    ("sandbox index", ANON, "/sandbox/"),
    ("connections", PERSON, "/settings/connections/"),
    ("agents, with a key and a revoked one", PERSON, "/settings/agents/"),
    ("agent history", PERSON, "/settings/agents/{key}/history/"),
    ("agent history, revoked key", PERSON, "/settings/agents/{revoked_key}/history/"),
    ("rename an agent key", PERSON, "/settings/agents/{key}/rename/"),
    ("revoke confirm", PERSON, "/settings/agents/{key}/revoke/"),
    ("activity", PERSON, "/settings/activity/"),
    ("sessions", PERSON, "/settings/sessions/"),
    ("connect request", PERSON, "/connect/{connect_request}/"),
    ("disconnect confirm", PERSON, "/settings/connections/{google}/disconnect/"),
    ("reauthenticate", PERSON, "/settings/reauthenticate/?next=/settings/agents/"),
    ("page not found, signed in", PERSON, "/settings/agents/999999/history/"),
    ("admin index", STAFF, "/admin/"),
]

WIDTHS = (375, 1280)
AXE_DIR = Path(__file__).parent / "a11y"
AXE = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
# On the admin's pages only: a rule's findings inside Django's own admin markup (rule: (where, why)).
# Anything the site's admin classes, templates or CSS cause is still a failure.
ADMIN_EXCLUSIONS: dict[str, tuple[str, str]] = {
    # SelectFilter2 (filter_horizontal: a user's groups and permissions) puts aria-label on a
    # plain <span> help icon.
    "aria-prohibited-attr": (".selector .help-tooltip", "Django's SelectFilter2 widget"),
    # Tabular inlines (the identities on a user) have an empty header over the "original" column and
    # over the delete checkboxes.
    "empty-table-header": (".inline-group", "Django's TabularInline markup"),
    # responsive.css makes a tabular inline scroll sideways at phone widths in a plain <div>.
    "scrollable-region-focusable": (".inline-group", "Django's TabularInline at phone widths"),
    # Django's admin CSS styles breadcrumb links and the changelist's "Show all" by colour only
    # (white on light blue, no underline); axe's verdict also flips with the colour transitions.
    "link-in-text-block": (".breadcrumbs, #changelist-search .small", "Django's admin CSS"),
}
STAFF_PASSWORD = "pw-for-a11y-tests-only-123"


def _axe_script() -> Path:
    """axe-core from tests/a11y (``npm ci`` there first when it is missing, like tests/oidc)."""
    if not AXE.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail(
                "npm is not installed: it installs axe-core for the accessibility test.", pytrace=False
            )
        subprocess.run(
            [npm, "ci", "--prefix", str(AXE_DIR), "--no-audit", "--no-fund", "--loglevel=error"], check=True
        )
    return AXE


class Auditor:
    """Runs axe on each page at both widths and keeps every violation for one report at the end."""

    def __init__(self) -> None:
        self.script = _axe_script()
        self.problems: list[str] = []
        self.checked: list[str] = []

    def check(self, page, name: str, *, admin_page: bool = False) -> None:
        excluded = {rule: where for rule, (where, _why) in ADMIN_EXCLUSIONS.items()} if admin_page else {}
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            if not page.evaluate("() => typeof window.axe === 'object'"):
                page.add_script_tag(path=str(self.script))
            found = page.evaluate(
                """async (excluded) => (await axe.run(document)).violations.map(v => ({
                    id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.filter(n => !(excluded[v.id]
                        && document.querySelector(n.target[0])?.closest(excluded[v.id]))),
                })).filter(v => v.nodes.length).map(v => ({...v,
                    where: v.nodes.slice(0, 3).map(n => n.target.join(' ') + ' ' + n.html.slice(0, 120)),
                }))""",
                excluded,
            )
            for violation in found:
                self.problems.append(
                    f"{name} ({page.url}) at {width}px: {violation['id']} ({violation['impact']}): "
                    f"{violation['help']}: {json.dumps(violation['where'])}"
                )
            if width == 375 and not admin_page:
                sideways = page.evaluate(
                    "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
                )
                if sideways > 0:
                    self.problems.append(f"{name} ({page.url}) at 375px: the page scrolls sideways")
        self.checked.append(name)

    def visit(self, page, name: str, path: str, *, admin_page: bool = False) -> None:
        page.goto(path)
        # No redirect: the page audited is the one listed (a sudo detour would hide it).
        assert urlsplit(page.url).path == urlsplit(path).path, f"{name}: {path} went to {page.url}"
        self.check(page, name, admin_page=admin_page)

    def assert_clean(self) -> None:
        assert not self.problems, "axe found:\n" + "\n".join(self.problems)


@contextmanager
def _browser(live_server) -> Iterator:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
            connections.close_all()  # the greenlet's own connections (see tests/browser.py)


def _page(browser, base_url: str, client: Client | None = None):
    # The site's Content-Security-Policy forbids inline scripts, axe's among them: bypassed for
    # the test's own injection only.
    context = browser.new_context(base_url=base_url, bypass_csp=True)
    if client is not None:
        host = base_url.split("//", 1)[1].split(":")[0]
        context.add_cookies(
            [
                {"name": name, "value": morsel.value, "domain": host, "path": "/"}
                for name, morsel in client.cookies.items()
                if morsel.value
            ]
        )
    page = context.new_page()
    page.set_default_timeout(15000)
    return page


def _world() -> tuple[dict[str, int | str], Client, Client]:
    """A person with GitHub and Google, an agent key that fetched a token, a revoked key and a
    pending connect request; and a superuser. Made through the site's own flows and services."""
    person = Client()
    sign_in(person, "github", email="alice@example.com", name="Alice")
    round_trip(person, "google-oauth2", email="alice.g@example.com", name="Alice G")
    alice = User.objects.get(email="alice@example.com")
    row, key = agents.create_agent_key(user=alice, name="deploy bot", providers=["github", "google-oauth2"])
    answer = Client().post(
        "/api/v1/token",
        json.dumps({"connection": "github"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert answer.status_code == 200, answer.content
    revoked, _ = agents.create_agent_key(user=alice, name="old bot", providers=["github"])
    agents.revoke_agent_key(user=alice, key_id=revoked.pk)
    request, _ = connect.request_connection(agent_key=row, connection="google-oauth2", scopes=["openid"])
    staff = Client()
    staff.force_login(User.objects.create_superuser("root", "root@example.com", STAFF_PASSWORD))
    ids = {
        "key": row.pk,
        "revoked_key": revoked.pk,
        "connect_request": request.id,
        "google": alice.social_auth.get(provider="google-oauth2").pk,
    }
    return ids, person, staff


def test_every_listed_page_has_no_violations_at_both_widths(live_server):
    ids, person, staff = _world()
    auditor = Auditor()
    with _browser(live_server) as browser:
        pages = {who: _page(browser, live_server.url, client) for who, client in _signed_in(person, staff)}
        for name, who, path in PAGES:
            auditor.visit(pages[who], name, path.format(**ids))
    assert len(auditor.checked) == len(PAGES)
    auditor.assert_clean()


def _signed_in(person: Client, staff: Client) -> list[tuple[str, Client | None]]:
    return [(ANON, None), (PERSON, person), (STAFF, staff)]


def _admin_paths() -> list[tuple[str, str]]:
    """Every registered model's change list, its add form when there is one, and one change form."""
    found = []
    for model in admin.site._registry:
        meta = model._meta
        found.append(
            (
                f"admin {meta.verbose_name_plural}",
                reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"),
            )
        )
        add = reverse(f"admin:{meta.app_label}_{meta.model_name}_add")
        found.append((f"admin add {meta.verbose_name}", add))
        obj = model._default_manager.order_by("pk").first()
        if obj is not None:
            found.append(
                (
                    f"admin {meta.verbose_name}",
                    reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk]),
                )
            )
    return found


def test_the_admin_has_no_violations_of_the_sites_making(live_server):
    _ids, _person, staff = _world()
    auditor = Auditor()
    with _browser(live_server) as browser:
        page = _page(browser, live_server.url, staff)
        for name, path in _admin_paths():
            response = page.goto(path)
            if response is not None and response.status == 403:
                continue  # a read-only admin offers no add form
            auditor.check(page, name, admin_page=True)
        # The merge action's confirmation page (the site's own admin template).
        sign_in(Client(), "google-oauth2", email="bob@example.com", name="Bob")
        page.goto("/admin/accounts/user/")
        for person in ("alice@example.com", "bob@example.com"):
            row = page.locator("#result_list tbody tr", has_text=person)
            row.locator('input[name="_selected_action"]').check()
        page.get_by_role("combobox", name="Action").select_option(label="Merge the two selected profiles…")
        page.get_by_role("button", name="Go").click()
        expect(page.get_by_role("heading", name="Merge two profiles")).to_be_visible()
        auditor.check(page, "admin merge confirm", admin_page=True)
    assert "admin merge confirm" in auditor.checked
    auditor.assert_clean()


def test_pages_reached_through_flows_have_no_violations(live_server, settings_rate_limits_off):
    auditor = Auditor()
    with _browser(live_server) as browser:
        page = _page(browser, live_server.url)
        # The sandbox's sign-in pages, then the existing-profile question and its link step.
        page.goto("/")
        page.get_by_role("button", name="Continue with GitHub").click()
        auditor.check(page, "sandbox GitHub sign-in")
        sandbox_sign_in(page, email="alice@example.com", name="Alice")
        page.get_by_role("button", name="Sign out").click()
        # Another browser answers the question by signing in to the existing profile: the link step.
        linking = _page(browser, live_server.url)
        linking.goto("/")
        linking.get_by_role("button", name="Continue with Google").click()
        sandbox_sign_in(linking, email="alice@example.com", name="Alice G")
        linking.get_by_role("button", name="Sign in with GitHub to link").click()
        sandbox_sign_in(linking, email="alice@example.com", name="Alice")
        expect(linking.get_by_role("heading", name="Link your Google account")).to_be_visible()
        auditor.check(linking, "link the pending account")
        page.get_by_role("button", name="Continue with Google").click()
        auditor.check(page, "sandbox Google sign-in")
        sandbox_sign_in(page, email="alice@example.com", name="Alice G")
        expect(
            page.get_by_role("heading", name="A profile with alice@example.com already exists")
        ).to_be_visible()
        auditor.check(page, "existing profile")
        page.get_by_role("button", name="Create a separate profile").click()
        sandbox_sign_in(page, email="alice@example.com", name="Alice G")
        expect(page.locator("[data-suggestion]")).to_have_count(1)
        auditor.check(page, "connections with a merge suggestion")

        # The merge: confirm it's you, prove the other profile, review.
        page.get_by_role("button", name="Merge it into this profile").click()
        auditor.check(page, "reauthenticate before merging")
        page.locator("[data-reauth]").first.click()
        sandbox_sign_in(page, email="alice@example.com", name="Alice G")
        expect(page.get_by_role("heading", name="Sign in to the other profile")).to_be_visible()
        auditor.check(page, "merge: sign in to the other profile")
        page.locator('[data-merge-prove="github"]').click()
        sandbox_sign_in(page, email="alice@example.com", name="Alice")
        expect(page).to_have_url(f"{live_server.url}{reverse('accounts:merge_review')}")
        auditor.check(page, "merge review")

        # A form sent without its CSRF cookie: the site's own CSRF failure page.
        other = _page(browser, live_server.url)
        other.goto("/")
        other.context.clear_cookies()
        other.get_by_role("button", name="Continue with GitHub").click()
        expect(other).to_have_title(re.compile("form has expired"))
        auditor.check(other, "CSRF failure")

        # A staff member without permission on a model: the site's 403 page.
        User.objects.create_user("helper", "helper@example.com", STAFF_PASSWORD, is_staff=True)
        staff = _page(browser, live_server.url)
        staff.goto("/staff/login/?next=/admin/")
        staff.get_by_label("Username").fill("helper")
        staff.get_by_label("Password").fill(STAFF_PASSWORD)
        staff.get_by_role("button", name="Sign in").click()
        assert staff.goto("/admin/accounts/user/").status == 403
        auditor.check(staff, "permission denied")
    auditor.assert_clean()


@pytest.mark.parametrize(
    "path", ["/settings/activity/", "/settings/agents/", "/settings/agents/{key}/history/"]
)
def test_wide_tables_scroll_from_the_keyboard_on_a_phone(live_server, path):
    ids, person, _staff = _world()
    with _browser(live_server) as browser:
        page = _page(browser, live_server.url, person)
        page.set_viewport_size({"width": 375, "height": 800})
        page.goto(path.format(**ids))
        table = page.locator(".table-wrap").first
        assert table.evaluate("el => el.scrollWidth > el.clientWidth")  # it is wider than a phone
        for _ in range(60):  # Tab through the page as a keyboard user does, until the table
            page.keyboard.press("Tab")
            if table.evaluate("el => el === document.activeElement"):
                break
        else:
            pytest.fail(f"Tab never reached the table on {path}")
        assert table.evaluate("el => getComputedStyle(el).outlineStyle") != "none"  # focus is visible
        assert table.get_attribute("role") == "region" and table.get_attribute("aria-label")
        for _ in range(5):
            page.keyboard.press("ArrowRight")
        # Arrow keys scroll the focused region (smoothly: wait for it rather than read at once).
        page.wait_for_function("el => el.scrollLeft > 0", arg=table.element_handle(), timeout=5000)
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
