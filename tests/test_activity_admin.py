"""The admin's activity list at any depth (issue 17.2, 14.9): newest first, "Older" by position,
the same queries on a deep page as on the first, no count of the table, providers by their titles."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.activity_kinds import AccountKind
from activity import recording
from activity.models import Activity

pytestmark = pytest.mark.django_db

START = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
LIST = "/admin/activity/activity/"


@pytest.fixture
def history(staff):
    Activity.objects.all().delete()
    for n in range(250):
        entry = recording.record(
            kind=AccountKind.SIGNED_IN,
            user=staff,
            provider="google-oauth2" if n % 2 else "github",
            message=f"event {n}",
        )
        Activity.objects.filter(pk=entry.pk).update(created_at=START + timedelta(minutes=n // 2))
    return staff


def _messages(html: str) -> list[str]:
    return re.findall(r'<td class="field-message">(event \d+)</td>', html)


def _older(html: str) -> str:
    found = re.search(r'<a href="(\?[^"]+)" rel="next">Older</a>', html)
    return LIST + found.group(1).replace("&amp;", "&") if found else ""


def test_the_list_pages_newest_first_with_the_same_queries_at_any_depth(
    client, history, django_assert_num_queries
):
    client.get(LIST)  # warm
    with CaptureQueriesContext(connection) as first:
        page = client.get(LIST).content.decode()
    # The log is reset by the next request: keep what the first one ran.
    first_sql = [q["sql"].upper() for q in first.captured_queries]
    assert _messages(page)[:3] == ["event 249", "event 248", "event 247"]
    assert len(_messages(page)) == 100
    second = client.get(_older(page)).content.decode()
    assert _messages(second)[0] == "event 149"
    deep = _older(second)
    with django_assert_num_queries(len(first_sql)) as captured:
        third = client.get(deep).content.decode()
    assert _messages(third) == [f"event {n}" for n in range(49, -1, -1)]
    assert not _older(third)  # the end
    assert "Newest" in third
    statements = first_sql + [q["sql"].upper() for q in captured.captured_queries]
    assert len(first_sql) == 2  # the session's user, then one page of rows
    assert not [s for s in statements if "COUNT(" in s or " OFFSET " in s]


def test_the_provider_filter_names_providers_by_title_and_keeps_the_position(client, history):
    page = client.get(LIST).content.decode()
    filters = page.split('id="changelist-filter"')[1]
    links = re.findall(r'<a href="(\?[^"]*provider=[^"]*)"[^>]*>([^<]*)</a>', filters)
    assert {text.strip() for _href, text in links} >= {"GitHub", "Google"}
    assert all(text.strip() for _href, text in links)  # no empty link text (axe link-name)
    github = client.get(LIST, {"provider": "github"}).content.decode()
    assert _messages(github)[:2] == ["event 248", "event 246"]
    older = client.get(_older(github)).content.decode()
    assert _messages(older)[0] == "event 48" and "provider=github" in _older(github)
    assert ">GitHub<" in older and "google-oauth2" not in re.sub(
        r'href="[^"]*"', "", older.split("<tbody>")[1]
    )


def test_a_broken_position_is_refused_plainly(client, history):
    response = client.get(LIST, {"before": "garbage"})
    assert response.status_code == 302 and response.headers["Location"].endswith("?e=1")
