"""The activity page at any size (issue 14.4, 17.2): filters, hand-outs grouped per agent, provider
and hour, keyset pages in constant queries, and the person's own CSV and JSON export."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.activity_kinds import AccountKind
from accounts.models import User
from activity import listing, recording
from activity.models import Activity
from vault import agents

from .flows import sign_in

pytestmark = pytest.mark.django_db

DASH = "\u2013"  # the en dash between two hours
HOUR = datetime(2026, 11, 3, 14, 0, tzinfo=UTC)


def _moved(entry: Activity, when: datetime) -> Activity:
    """Put a record at a chosen time (the guard forbids save(); an update is how tests travel)."""
    Activity.objects.filter(pk=entry.pk).update(created_at=when)
    entry.created_at = when
    return entry


def _handouts(
    key, count: int, start: datetime, *, provider: str = "github", step: int = 60
) -> list[Activity]:
    identity = key.user.social_auth.first()
    return [
        _moved(
            agents.record_token_issued(
                key=key,
                connection=provider,
                identity_id=identity.pk,
                account_name="alice",
                scopes=["repo"],
                ip_address="203.0.113.7",
            ),
            start + timedelta(seconds=step * n),
        )
        for n in range(count)
    ]


def _human(user: User, kind: str, when: datetime, message: str = "", provider: str = "") -> Activity:
    return _moved(recording.record(kind=kind, user=user, message=message, provider=provider), when)


@pytest.fixture
def alice(client) -> User:
    sign_in(client, "github", email="alice@example.com")
    alice = User.objects.get(email="alice@example.com")
    Activity.objects.filter(user=alice).delete()  # start from a known history
    return alice


def _rows(html: str) -> list[str]:
    return re.findall(r"<tr data-kind=\"([a-z_]+)\"", html)


def test_55_hand_outs_are_one_row_and_the_persons_own_events_stay_on_page_one(client, alice):
    bot = agents.create_agent_key(user=alice, name="Release bot", providers=["github"])[0]
    _human(alice, AccountKind.LINKED, HOUR - timedelta(minutes=30), "Linked GitHub", "github")
    _handouts(bot, 55, HOUR)
    _human(alice, AccountKind.SIGNED_IN, HOUR + timedelta(minutes=70), "Signed in")
    for n in range(60):  # an older history that would fill page one with single rows
        _human(alice, AccountKind.SIGNED_IN, HOUR - timedelta(days=1, minutes=n), f"old {n}")

    html = client.get("/settings/activity/").content.decode()

    assert f"Release bot got 55 GitHub tokens, 14:00{DASH}15:00 UTC" in html
    assert _rows(html)[:4] == ["agent_key_created", "signed_in", "token_issued", "linked"]
    assert html.count("data-group=") == 1
    # Expanding the group (no JavaScript: <details>) lists the hand-outs and links to all of them.
    group = html.split("<details>")[1].split("</details>")[0]
    assert group.count("<li>") == listing.GROUP_SHOWN
    assert "for alice from 203.0.113.7" in group
    assert "(20 of 55 are listed here)" in group
    link = re.search(r'href="\?([^"]+)"', group).group(1).replace("&amp;", "&")
    flat = client.get(f"/settings/activity/?{link}").content.decode()
    assert _rows(flat) == ["token_issued"] * 50  # each hand-out on its own, newest first
    assert "Each token is listed on its own" in flat
    older = re.search(r'href="\?([^"]+)" rel="next">Older', flat).group(1).replace("&amp;", "&")
    assert _rows(client.get(f"/settings/activity/?{older}").content.decode()) == ["token_issued"] * 5


def test_hand_outs_are_grouped_per_agent_provider_and_hour(client, alice):
    sign_in(client, "google-oauth2", email="alice@example.com")
    bot = agents.create_agent_key(user=alice, name="bot", providers=["github", "google-oauth2"])[0]
    helper = agents.create_agent_key(user=alice, name="helper", providers=["github"])[0]
    _handouts(bot, 3, HOUR)
    _handouts(bot, 2, HOUR + timedelta(hours=1))
    _handouts(bot, 4, HOUR, provider="google-oauth2")
    _handouts(helper, 5, HOUR)

    html = client.get("/settings/activity/").content.decode()

    summaries = set(re.findall(r"<summary>([^<]+)</summary>", html))
    assert summaries == {
        f"bot got 2 GitHub tokens, 15:00{DASH}16:00 UTC",
        f"bot got 3 GitHub tokens, 14:00{DASH}15:00 UTC",
        f"bot got 4 Google tokens, 14:00{DASH}15:00 UTC",
        f"helper got 5 GitHub tokens, 14:00{DASH}15:00 UTC",
    }


def test_filters_by_kind_provider_and_agent_are_labelled_selects(client, alice):
    bot = agents.create_agent_key(user=alice, name="bot", providers=["github"])[0]
    other = agents.create_agent_key(user=alice, name="other", providers=["github"])[0]
    _handouts(bot, 2, HOUR)
    _handouts(other, 1, HOUR)
    _human(alice, AccountKind.UNLINKED, HOUR + timedelta(hours=2), "Removed Google", "google-oauth2")
    _human(alice, AccountKind.SIGNED_IN, HOUR + timedelta(hours=3), "Signed in")

    page = client.get("/settings/activity/").content.decode()
    for label, name in (("What", "kind"), ("Provider", "provider"), ("Agent", "agent")):
        assert re.search(
            rf'<label for="id_{name}">{label}</label><select name="{name}" id="id_{name}">', page
        )
    assert '<option value="google-oauth2">Google</option>' in page
    assert f'<option value="{bot.pk}">bot</option>' in page

    by_kind = client.get("/settings/activity/", {"kind": "unlinked"}).content.decode()
    assert _rows(by_kind) == ["unlinked"]
    by_provider = client.get("/settings/activity/", {"provider": "google-oauth2"}).content.decode()
    assert _rows(by_provider) == ["unlinked"]
    by_agent = client.get("/settings/activity/", {"agent": other.pk}).content.decode()
    assert re.findall(r"<summary>([^<]+)</summary>", by_agent) == [
        f"other got 1 GitHub token, 14:00{DASH}15:00 UTC"
    ]
    nothing = client.get("/settings/activity/", {"kind": "merged"}).content.decode()
    assert "Nothing matches these filters." in nothing


def test_a_filter_the_page_never_offered_is_said_and_ignored(client, alice):
    _human(alice, AccountKind.SIGNED_IN, HOUR, "Signed in")
    response = client.get("/settings/activity/", {"kind": "nonsense", "agent": "99999"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "That filter is not one this page offers (What, Agent); showing everything." in html
    assert _rows(html) == ["signed_in"]
    broken = client.get("/settings/activity/", {"before": "not-a-cursor"}).content.decode()
    assert "That page link is not valid any more" in broken
    assert _rows(broken) == ["signed_in"]


def _walk(client, start: str, rel: str, label: str) -> list[list[str]]:
    """Follow one pagination link to the end; every page's event messages."""
    pages, url = [], start
    while url:
        html = client.get(url).content.decode()
        pages.append(re.findall(r"<td>(event \d+)</td>", html))
        found = re.search(rf'href="\?([^"]+)" rel="{rel}">{label}<', html)
        url = f"/settings/activity/?{found.group(1).replace('&amp;', '&')}" if found else ""
    return pages


def test_older_and_newer_walk_every_row_once_in_order(client, alice):
    for n in range(120):
        # Pairs share an instant: the cursor's id keeps them apart.
        _human(alice, AccountKind.SIGNED_IN, HOUR + timedelta(minutes=n // 2), f"event {n}")
    pages = _walk(client, "/settings/activity/", "next", "Older")
    assert [len(p) for p in pages] == [50, 50, 20]
    seen = [m for page in pages for m in page]
    assert seen == [f"event {n}" for n in range(119, -1, -1)]
    # From the last page, "Newer" goes back up through the same rows.
    last = client.get("/settings/activity/").content.decode()
    older = re.search(r'href="\?([^"]+)" rel="next">Older', last).group(1)
    second = client.get(f"/settings/activity/?{older}").content.decode()
    newer = re.search(r'href="\?([^"]+)" rel="prev">Newer', second).group(1)
    assert re.findall(
        r"<td>(event \d+)</td>", client.get(f"/settings/activity/?{newer}").content.decode()
    ) == [f"event {n}" for n in range(119, 69, -1)]
    assert 'rel="prev"' not in last  # the first page has nothing newer


def test_a_deep_page_costs_the_same_queries_as_the_first_and_never_counts_or_skips(
    client, alice, django_assert_num_queries
):
    bot = agents.create_agent_key(user=alice, name="bot", providers=["github"])[0]
    for n in range(400):
        _human(alice, AccountKind.SIGNED_IN, HOUR - timedelta(hours=n), f"event {n}")
    _handouts(bot, 30, HOUR - timedelta(hours=300))
    client.get("/settings/activity/")  # session and caches warm
    with CaptureQueriesContext(connection) as first:
        client.get("/settings/activity/")
    # The log is reset by the next request: keep what the first one ran.
    first_sql = [q["sql"].upper() for q in first.captured_queries]
    deep = Activity.objects.filter(user=alice).order_by("-created_at", "-id")[350]
    cursor = listing.Cursor.of(deep).text()
    with django_assert_num_queries(len(first_sql)) as captured:
        html = client.get(f"/settings/activity/?before={cursor}").content.decode()
    assert "event 351" in html
    statements = first_sql + [q["sql"].upper() for q in captured.captured_queries]
    assert not [s for s in statements if " OFFSET " in s or "COUNT(" in s]


def test_export_is_the_persons_own_activity_filtered_and_without_secrets(client, alice):
    bot, raw_key = agents.create_agent_key(user=alice, name="bot", providers=["github"])
    _handouts(bot, 3, HOUR)
    _human(alice, AccountKind.SIGNED_IN, HOUR + timedelta(hours=1), "Signed in")
    bob = Client()
    sign_in(bob, "github", email="bob@example.com")
    bob_user = User.objects.get(email="bob@example.com")
    _human(bob_user, AccountKind.SIGNED_IN, HOUR, "Bob signed in")

    response = client.get("/settings/activity/export.csv")
    assert response.streaming and response["Content-Type"].startswith("text/csv")
    assert 'filename="activity.csv"' in response["Content-Disposition"]
    body = b"".join(response.streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert len(rows) == Activity.objects.filter(user=alice).count() == 5
    assert {r["kind"] for r in rows} == {"token_issued", "signed_in", "agent_key_created"}
    handout = next(r for r in rows if r["kind"] == "token_issued")
    assert (handout["what"], handout["provider_title"], handout["agent"]) == (
        "Token handed out",
        "GitHub",
        "bot",
    )
    assert handout["time"].endswith("Z") and json.loads(handout["data"])["scopes"] == ["repo"]
    assert "Bob signed in" not in body and raw_key not in body

    response = client.get("/settings/activity/export.json", {"kind": "token_issued", "agent": bot.pk})
    assert response["Content-Type"] == "application/json"
    records = json.loads(b"".join(response.streaming_content))
    assert [r["kind"] for r in records] == ["token_issued"] * 3
    assert records[0]["time"] > records[-1]["time"]
    assert raw_key not in json.dumps(records)

    refused = client.get("/settings/activity/export.json", {"provider": "myspace"})
    assert refused.status_code == 400 and b"nothing exported" in refused.content
    assert Client().get("/settings/activity/export.csv").status_code == 302  # signed out: sign in first


def test_a_long_export_is_read_in_keyset_batches(alice):
    for n in range(25):
        _human(alice, AccountKind.SIGNED_IN, HOUR + timedelta(seconds=n // 3), f"event {n}")
    with CaptureQueriesContext(connection) as queries:
        got = list(listing.rows_for_export(user_id=alice.pk, filters=listing.Filters(), batch=10))
    assert [e.message for e in got] == [f"event {n}" for n in range(24, -1, -1)]
    assert len(queries.captured_queries) == 3
    assert not [q for q in queries.captured_queries if "OFFSET" in q["sql"].upper()]


def test_a_csv_cell_never_starts_a_spreadsheet_formula(client, alice):
    named = agents.create_agent_key(user=alice, name="=HYPERLINK(1)", providers=["github"])[0]
    _handouts(named, 1, HOUR)
    body = b"".join(client.get("/settings/activity/export.csv", {"agent": named.pk}).streaming_content)
    (row,) = csv.DictReader(io.StringIO(body.decode()))
    assert row["agent"] == "'=HYPERLINK(1)"
    assert json.loads(client.get("/settings/activity/export.json", {"agent": named.pk}).getvalue())[0][
        "agent"
    ] == ("=HYPERLINK(1)")


def test_a_group_cut_by_the_page_says_the_hour_continues_and_the_next_page_has_the_rest(client, alice):
    bot = agents.create_agent_key(user=alice, name="bot", providers=["github"])[0]
    Activity.objects.filter(user=alice).delete()
    _handouts(bot, 30, HOUR)  # 14:00 to 14:29
    _human(alice, AccountKind.SIGNED_IN, HOUR + timedelta(minutes=10, seconds=30), "between")
    for n in range(49):
        _human(alice, AccountKind.SIGNED_IN, HOUR + timedelta(hours=2, minutes=n), f"later {n}")

    first = listing.page_of(user_id=alice.pk, filters=listing.Filters(), agent_names={bot.pk: "bot"})
    (group,) = [item for item in first.items if item.is_group]
    assert (group.count, group.continues) == (19, True)  # 14:11 to 14:29; "between" came next
    second = listing.page_of(
        user_id=alice.pk, filters=listing.Filters(), agent_names={bot.pk: "bot"}, before=first.older
    )
    assert [item.entry.message for item in second.items if not item.is_group] == ["between"]
    (rest,) = [item for item in second.items if item.is_group]
    assert (rest.count, rest.continues) == (11, False)
    html = client.get("/settings/activity/").content.decode()
    assert "bot got 19 GitHub tokens" in html and "(more from this hour on the neighbouring page)" in html

    # The read limit cuts an hour the same way, and says so.
    capped = listing.page_of(
        user_id=alice.pk, filters=listing.Filters(kind="token_issued"), agent_names={}, scan=10
    )
    assert [(g.count, g.continues) for g in capped.items] == [(10, True)]
