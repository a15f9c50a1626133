"""The whole client-initiated loop in real Chromium, with the example agent as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from activity.models import Activity
from vault.activity_kinds import VaultKind
from vault.models import ConnectRequest

from .browser import chromium_page, create_agent_key, sandbox_sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "agent.py"


def _read_line_with(process: subprocess.Popen, needle: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                break
            continue
        seen.append(line)
        if needle in line:
            return line
    raise AssertionError(f"agent never printed {needle!r}; it printed: {''.join(seen)}")


def test_agent_asks_user_connects_agent_retries_and_gets_a_token(live_server, settings):
    settings.SITE_URL = live_server.url
    with chromium_page(live_server.url) as page:
        page.goto("/")
        page.get_by_role("button", name="Continue with Google").click()
        sandbox_sign_in(page, email="alice@example.com", name="Alice")
        page.get_by_role("link", name="Agents").click()
        key = create_agent_key(page, name="example agent")

        agent = subprocess.Popen(
            [
                sys.executable,
                str(EXAMPLE),
                "--site",
                live_server.url,
                "--connection",
                "github",
                "--wait",
                "90",
            ],
            env={**os.environ, "LINKING_SITE_AGENT_KEY": key},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            line = _read_line_with(agent, "Please open this link")
            url = line.rsplit(" ", 1)[-1].strip()
            assert url.startswith(f"{live_server.url}/connect/cr_")
            assert ConnectRequest.objects.get().status == "pending"

            page.goto(url)
            expect(
                page.get_by_role("heading", name="Agent “example agent” asks you to connect GitHub")
            ).to_be_visible()
            page.get_by_role("button", name="Approve and continue to GitHub").click()
            sandbox_sign_in(page, email="alice@example.com", name="Alice")
            page.get_by_role("button", name="Let the agent continue").click()
            expect(page.get_by_role("heading", name="Done: the agent can continue")).to_be_visible()

            _read_line_with(agent, "Connect request completed")
            done = _read_line_with(agent, "Got a github token")
            assert "expires in" in done
            assert agent.wait(30) == 0
        finally:
            if agent.poll() is None:
                agent.kill()
    assert Activity.objects.get(kind=VaultKind.TOKEN_ISSUED).data["agent"] == "example agent"
