"""The sessions page (/settings/sessions/): a person's signed-in browsers, and signing them out."""

from __future__ import annotations

import time

import pytest
from django.core.cache import cache
from django.db import connections
from django.test import Client
from playwright.sync_api import expect, sync_playwright

from accounts import sessions
from accounts.models import User, UserSession
from activity.models import Activity

from .browser import CHROMIUM, CHROMIUM_ARGS, sandbox_sign_in
from .flows import messages_on, sign_in

FIREFOX_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)
CHROME_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36"
)
EDGE_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86"
)


def _browser(user_agent: str, address: str = "203.0.113.7", email: str = "alice@example.com") -> Client:
    client = Client(HTTP_USER_AGENT=user_agent, REMOTE_ADDR=address)
    sign_in(client, "github", email=email)
    return client


def _signed_in(client: Client) -> bool:
    return client.get("/settings/connections/").status_code == 200


@pytest.mark.parametrize(
    ("user_agent", "device"),
    [
        (FIREFOX_WINDOWS, "Firefox on Windows"),
        (SAFARI_IPHONE, "Safari on iPhone"),
        (CHROME_ANDROID, "Chrome on Android"),
        (EDGE_MAC, "Edge on macOS"),
        ("curl/8.5.0", "Unknown browser"),
        ("", "Unknown browser"),
    ],
)
def test_the_device_is_a_short_readable_summary(user_agent, device):
    assert sessions.device_summary(user_agent) == device


@pytest.mark.django_db
def test_the_page_lists_every_signed_in_browser_and_marks_this_one():
    here = _browser(FIREFOX_WINDOWS, "203.0.113.7")
    _browser(SAFARI_IPHONE, "198.51.100.20")
    page = here.get("/settings/sessions/")
    html = page.content.decode()
    assert page.status_code == 200
    assert html.count("data-session-id=") == 2
    assert "Firefox on Windows" in html and "Safari on iPhone" in html
    assert "203.0.113.7" in html and "198.51.100.20" in html
    current = UserSession.objects.get(user_agent=FIREFOX_WINDOWS)
    assert f'data-session-id="{current.pk}" data-current-session' in html
    assert "This browser" in html
    assert html.count("data-session-sign-out=") == 1  # no "Sign out" of another kind for this one
    for key in UserSession.objects.values_list("session_key", flat=True):
        assert key not in html  # session keys are bearer secrets: pages name rows by id
    assert 'href="/settings/sessions/"' in here.get("/settings/connections/").content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "engine",
    [
        "django.contrib.sessions.backends.cached_db",
        "django.contrib.sessions.backends.db",
        "django.contrib.sessions.backends.cache",
    ],
)
def test_signing_out_another_browser_ends_it_in_every_session_store(settings, engine):
    settings.SESSION_ENGINE = engine
    here = _browser(FIREFOX_WINDOWS)
    there = _browser(SAFARI_IPHONE, "198.51.100.20")
    other = UserSession.objects.get(user_agent=SAFARI_IPHONE)
    response = here.post(f"/settings/sessions/{other.pk}/sign-out/")
    assert response.status_code == 302 and response.headers["Location"] == "/settings/sessions/"
    assert "Signed out Safari on iPhone." in messages_on(here, "/settings/sessions/")
    assert not _signed_in(there)
    assert _signed_in(here)
    assert not UserSession.objects.filter(pk=other.pk).exists()
    entry = Activity.objects.get(kind="session_ended")
    assert entry.user == User.objects.get() and "Safari on iPhone" in entry.message


@pytest.mark.django_db
def test_sign_out_everywhere_else_keeps_only_this_browser():
    here = _browser(FIREFOX_WINDOWS)
    others = [_browser(SAFARI_IPHONE), _browser(CHROME_ANDROID)]
    assert here.get("/settings/sessions/").content.decode().count("data-sign-out-others") == 1
    here.post("/settings/sessions/sign-out-others/")
    assert "Signed out 2 other browsers." in messages_on(here, "/settings/sessions/")
    assert [_signed_in(client) for client in others] == [False, False]
    assert _signed_in(here)
    assert list(UserSession.objects.values_list("user_agent", flat=True)) == [FIREFOX_WINDOWS]
    assert Activity.objects.get(kind="other_sessions_ended").data == {"count": 2}
    assert "data-sign-out-others" not in here.get("/settings/sessions/").content.decode()


@pytest.mark.django_db
def test_another_persons_session_id_is_refused_and_nothing_changes():
    mallory = _browser(FIREFOX_WINDOWS, email="mallory@example.com")
    alice = _browser(SAFARI_IPHONE, email="alice@example.com")
    alices = UserSession.objects.get(user__email="alice@example.com")
    assert mallory.post(f"/settings/sessions/{alices.pk}/sign-out/").status_code == 404
    assert mallory.post("/settings/sessions/999999/sign-out/").status_code == 404
    mallory.post("/settings/sessions/sign-out-others/")
    assert _signed_in(alice)
    assert UserSession.objects.filter(pk=alices.pk).exists()
    assert not Activity.objects.filter(kind="session_ended").exists()


@pytest.mark.django_db
def test_this_browser_is_not_signed_out_from_its_own_row():
    here = _browser(FIREFOX_WINDOWS)
    mine = UserSession.objects.get()
    here.post(f"/settings/sessions/{mine.pk}/sign-out/")
    assert any("use “Sign out”" in m for m in messages_on(here, "/settings/sessions/"))
    assert _signed_in(here) and UserSession.objects.filter(pk=mine.pk).exists()


@pytest.mark.django_db
def test_signing_out_needs_sudo_mode_and_the_detour_comes_back_to_the_page(settings):
    here = _browser(FIREFOX_WINDOWS)
    there = _browser(SAFARI_IPHONE)
    session = here.session
    session["auth_at"] = int(time.time()) - settings.SUDO_MODE_SECONDS - 60
    session.save()
    page = here.get("/settings/sessions/").content.decode()
    assert "confirm it" in page
    other = UserSession.objects.get(user_agent=SAFARI_IPHONE)
    for url in (f"/settings/sessions/{other.pk}/sign-out/", "/settings/sessions/sign-out-others/"):
        response = here.post(url)
        assert response.headers["Location"] == "/settings/reauthenticate/?next=%2Fsettings%2Fsessions%2F"
    assert _signed_in(there) and UserSession.objects.count() == 2
    # Confirming (a provider round trip for reauth) lands back on the sessions page.
    result = sign_in(here, "github", email="alice@example.com", purpose="reauth", next="/settings/sessions/")
    assert result.location == "/settings/sessions/"
    assert here.post(f"/settings/sessions/{other.pk}/sign-out/").status_code == 302
    assert not _signed_in(there)


@pytest.mark.django_db
def test_forms_need_post_and_a_csrf_token():
    signed_in = _browser(FIREFOX_WINDOWS)
    here = Client(enforce_csrf_checks=True)
    here.cookies = signed_in.cookies  # the same browser, now checked for its CSRF token
    there = _browser(SAFARI_IPHONE)
    other = UserSession.objects.get(user_agent=SAFARI_IPHONE)
    assert here.get(f"/settings/sessions/{other.pk}/sign-out/").status_code == 405
    assert here.post(f"/settings/sessions/{other.pk}/sign-out/").status_code == 403
    assert here.post("/settings/sessions/sign-out-others/").status_code == 403
    assert _signed_in(there)
    assert Client().get("/settings/sessions/").status_code == 302  # signed out: to the sign-in page


@pytest.mark.django_db
def test_last_seen_is_written_at_most_once_per_interval():
    here = _browser(FIREFOX_WINDOWS, "203.0.113.7")
    row = UserSession.objects.get()
    assert row.last_seen_at is not None
    UserSession.objects.update(last_seen_at=None, user_agent=None)
    here.get("/settings/connections/")  # within the interval of the sign-in: nothing written
    assert UserSession.objects.get().last_seen_at is None
    cache.clear()  # the interval has passed
    here.get("/settings/connections/", REMOTE_ADDR="198.51.100.9")
    row = UserSession.objects.get()
    assert row.last_seen_at is not None and row.ip_address == "198.51.100.9"
    assert row.user_agent == FIREFOX_WINDOWS  # a row indexed before devices were kept gets one
    assert "Firefox on Windows" in here.get("/settings/sessions/").content.decode()


@pytest.mark.django_db
def test_a_browser_whose_session_has_ended_leaves_the_list():
    here = _browser(FIREFOX_WINDOWS)
    there = _browser(SAFARI_IPHONE)
    there.post("/logout/")
    stale = UserSession.objects.create(
        user=User.objects.get(), session_key="x" * 32, user_agent=CHROME_ANDROID
    )
    html = here.get("/settings/sessions/").content.decode()
    assert "Safari on iPhone" not in html and "Chrome on Android" not in html
    assert not UserSession.objects.filter(pk=stale.pk).exists()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_two_real_browsers_one_signs_the_other_out(live_server):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            pages = []
            for _ in range(2):
                context = browser.new_context(
                    base_url=live_server.url, viewport={"width": 1100, "height": 900}
                )
                page = context.new_page()
                page.set_default_timeout(15000)
                page.goto("/")
                page.get_by_role("button", name="Continue with GitHub").click()
                sandbox_sign_in(page, email="alice@example.com", name="Alice")
                expect(page).to_have_url(f"{live_server.url}/settings/connections/")
                pages.append(page)
            first, second = pages

            first.get_by_role("link", name="Sessions").click()
            expect(first.locator("[data-session-id]")).to_have_count(2)
            expect(first.locator("[data-current-session]")).to_contain_text("This browser")
            expect(first.locator("[data-current-session]")).to_contain_text("Chrome on Linux")
            first.locator("[data-session-sign-out]").click()
            expect(first.get_by_text("Signed out Chrome on Linux.")).to_be_visible()
            expect(first.locator("[data-session-id]")).to_have_count(1)

            second.reload()
            expect(second.get_by_role("heading", name="Sign in")).to_be_visible()
            expect(second.get_by_role("button", name="Sign out")).to_have_count(0)
            first.reload()
            expect(first.get_by_role("button", name="Sign out", exact=True)).to_be_visible()
        finally:
            browser.close()
            connections.close_all()  # the greenlet's own connections (see tests/browser.py)
