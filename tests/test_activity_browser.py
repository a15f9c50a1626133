"""The activity page in real Chromium (issue 14.4): filter, expand a group of hand-outs, Older/Newer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from accounts.activity_kinds import AccountKind
from accounts.models import User
from activity import recording
from activity.models import Activity
from vault import agents

from .browser import chromium_page, sandbox_sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HOUR = datetime(2026, 11, 3, 14, 0, tzinfo=UTC)


def _moved(entry: Activity, when: datetime) -> None:
    Activity.objects.filter(pk=entry.pk).update(created_at=when)


def _history(alice: User) -> None:
    """55 tokens an agent got in one hour, among the person's own events, and a long older past."""
    bot = agents.create_agent_key(user=alice, name="Release bot", providers=["github"])[0]
    identity = alice.social_auth.get()
    for n in range(55):
        entry = agents.record_token_issued(
            key=bot,
            connection="github",
            identity_id=identity.pk,
            account_name="alice",
            scopes=[],
            ip_address=None,
        )
        _moved(entry, HOUR + timedelta(seconds=30 * n))
    _moved(
        recording.record(kind=AccountKind.UNLINKED, user=alice, message="Removed Google"),
        HOUR - timedelta(hours=1),
    )
    for n in range(70):
        _moved(
            recording.record(kind=AccountKind.SIGNED_IN, user=alice, message=f"old sign-in {n}"),
            HOUR - timedelta(days=2, minutes=n),
        )


def test_a_person_filters_expands_a_group_and_pages_through_their_activity(live_server):
    with chromium_page(live_server.url) as page:
        page.goto("/")
        page.get_by_role("button", name="Continue with GitHub").click()
        sandbox_sign_in(page, email="alice@example.com", name="Alice")
        _history(User.objects.get(email="alice@example.com"))

        page.get_by_role("link", name="Activity").click()
        summary = page.get_by_text("Release bot got 55 GitHub tokens, 14:00\u201315:00 UTC")
        assert summary.is_visible()
        assert page.get_by_role("cell", name="Removed Google").is_visible()  # not drowned by the 55
        handouts = page.locator("details ul.handouts li")
        assert not handouts.first.is_visible()
        summary.click()  # <details>: no JavaScript of ours
        assert handouts.first.is_visible() and handouts.count() == 20

        page.get_by_label("What").select_option(label="Removed an account")
        page.get_by_role("button", name="Show").click()
        assert page.locator("tbody tr").count() == 1
        assert page.get_by_role("cell", name="Removed Google").is_visible()
        page.get_by_role("link", name="Clear filters").click()

        first = page.locator("tbody tr").count()
        assert first == 50
        page.get_by_role("link", name="Older").click()
        assert page.get_by_role("cell", name="old sign-in 69").is_visible()
        assert not page.get_by_text("Release bot got").is_visible()
        page.get_by_role("link", name="Newer").click()
        assert page.get_by_text("Release bot got 55 GitHub tokens").is_visible()
        assert page.locator("tbody tr").count() == 50
