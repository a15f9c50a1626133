"""Real headless Chromium (Debian's package) driven by Playwright, for browser tests.

Playwright's sync API runs an event loop in the test thread, which makes Django refuse ORM calls
from that thread; the tests only touch the ORM between browser steps, so that guard is relaxed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@contextmanager
def chromium_page(base_url: str) -> Iterator:
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        raise RuntimeError(
            f"Chromium not found at {CHROMIUM}: run `make browser` (apt-get install chromium)."
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(base_url=base_url, viewport={"width": 1100, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15000)
        try:
            yield page
        finally:
            context.close()
            browser.close()
            # ORM calls made inside this block run in Playwright's greenlet context, which gets
            # database connections of its own; close them so no session outlives the test.
            from django.db import connections

            connections.close_all()


def sandbox_sign_in(page, *, email: str, name: str = "", verified: bool = True, deny: bool = False) -> None:
    """Fill the sandbox provider's page the way a person would."""
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Name", exact=True).fill(name or email.split("@")[0].title())
    box = page.get_by_label("Email verified")
    if box.is_checked() != verified:
        box.click()
    page.get_by_role("button", name="Deny" if deny else "Allow").click()


def create_agent_key(page, *, name: str) -> str:
    """On the open Agents page, a GitHub key named ``name`` made as a person makes one: the key
    the page shows once."""
    page.get_by_label("Agent name").fill(name)
    page.get_by_label("GitHub", exact=True).check()
    page.get_by_role("button", name="Create key").click()
    key = page.locator("[data-agent-key]").get_attribute("data-agent-key")
    assert key and key.startswith("lsa_")
    return key
