"""The agents page in real Chromium: post/redirect/get, the copy button, a phone-sized screen."""

from __future__ import annotations

import pytest
from django.core import mail

from vault.models import AgentKey

from .browser import chromium_page, create_agent_key, sandbox_sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _key_mails() -> list:
    return [m for m in mail.outbox if "agent key" in m.subject.lower()]


def test_reload_and_back_after_creating_a_key_create_nothing(live_server, settings):
    settings.SITE_URL = live_server.url
    with chromium_page(live_server.url) as page:
        page.goto("/")
        page.get_by_role("button", name="Continue with Google").click()
        sandbox_sign_in(page, email="alice@example.com", name="Alice")
        page.get_by_role("link", name="Agents").click()
        key = create_agent_key(page, name="reload test")
        assert AgentKey.objects.count() == 1 and len(_key_mails()) == 1

        page.reload()
        assert page.locator("[data-agent-key]").count() == 0  # shown once, then forgotten
        assert key not in page.content()
        page.go_back()
        page.reload()
        assert key not in page.content()
        assert AgentKey.objects.count() == 1 and len(_key_mails()) == 1


def test_the_copy_button_copies_and_the_key_fits_a_phone(live_server, settings):
    settings.SITE_URL = live_server.url
    with chromium_page(live_server.url) as page:
        page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
        page.set_viewport_size({"width": 375, "height": 800})
        page.goto("/")
        page.get_by_role("button", name="Continue with Google").click()
        sandbox_sign_in(page, email="bob@example.com", name="Bob")
        page.goto("/settings/agents/")
        key = create_agent_key(page, name="phone")
        field = page.get_by_role("textbox", name="Agent key")
        assert field.get_attribute("data-agent-key") == key
        # The whole key is visible: it wraps inside its field instead of scrolling out of sight.
        widths = field.evaluate("el => [el.scrollWidth, el.clientWidth, el.scrollHeight, el.clientHeight]")
        assert widths[0] <= widths[1] and widths[2] <= widths[3], widths
        assert field.evaluate("el => el.getBoundingClientRect().right") <= 375
        page.get_by_role("button", name="Copy key").click()
        page.get_by_text("Copied.").wait_for()
        assert page.evaluate("navigator.clipboard.readText()") == key
