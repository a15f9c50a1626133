"""``vault_refresh`` at size (issue 17.4): a bounded number of refreshes at a time, a provider's 429
``Retry-After`` honoured for the rest of the run, and the selection read by its index."""

from __future__ import annotations

import io
import json
import threading
import time
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from sandbox import state
from vault import provider_calls, refresh_selection
from vault.models import TokenSet
from vault.refresh import refresh_expiring

from .flows import round_trip, sign_in
from .vault_support import expire, http_status, patch_transport, stored_tokens

#: A rate-limited refresh as the providers answer it: GitHub's REST error body (no OAuth ``error``
#: field) and Google's API error object, both 429 with ``Retry-After``.
RATE_LIMITED = {
    "github": (
        b'{"message": "API rate limit exceeded for this application.", '
        b'"documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}',
        {"Retry-After": "120", "X-RateLimit-Remaining": "0", "X-RateLimit-Resource": "core"},
    ),
    "google-oauth2": (
        b'{"error": {"code": 429, "message": "Quota exceeded for quota metric \'Token requests\'.", '
        b'"status": "RESOURCE_EXHAUSTED"}}',
        {"Retry-After": "120"},
    ),
}
TOKEN_PATHS = {"github": "/login/oauth/access_token", "google-oauth2": "/sandbox/google/token"}


@pytest.fixture(autouse=True)
def _no_retry_pause(monkeypatch):
    monkeypatch.setattr(provider_calls, "RETRY_BACKOFF", (0.0, 0.0))


def _people(client, provider: str, count: int) -> list[TokenSet]:
    """``count`` people, each signed in with ``provider``, each token set due for renewal."""
    for index in range(count):
        client.logout()
        sign_in(client, provider, email=f"person{index}@example.com")
    token_sets = list(TokenSet.objects.filter(provider=provider).order_by("pk"))
    for token_set in token_sets:
        expire(token_set)
    return token_sets


@pytest.mark.django_db(transaction=True)
def test_refreshes_run_concurrently_but_never_more_than_the_bound(client, monkeypatch):
    token_sets = _people(client, "github", 6)
    monkeypatch.setattr(refresh_selection, "SELECTION_PAGE", 2)  # several pages, read as they go
    before = {token_set.pk: stored_tokens(token_set)[0] for token_set in token_sets}
    lock = threading.Lock()
    in_flight = {"now": 0, "most": 0}
    threads: set[str] = set()

    def overlapping(adapter, request, *, original, **kwargs):
        with lock:
            in_flight["now"] += 1
            in_flight["most"] = max(in_flight["most"], in_flight["now"])
            threads.add(threading.current_thread().name)
        try:
            time.sleep(0.05)  # long enough that other workers' calls overlap this one
            return original(adapter, request, **kwargs)
        finally:
            with lock:
                in_flight["now"] -= 1

    patch_transport(
        monkeypatch, when=lambda method, url: url.endswith(TOKEN_PATHS["github"]), answer=overlapping
    )
    out = io.StringIO()
    call_command("vault_refresh", "--workers", "3", "--no-warnings", stdout=out, stderr=io.StringIO())
    assert "Refresh: 6 due, 6 refreshed" in out.getvalue()
    assert 1 <= in_flight["most"] <= 3
    assert len({name for name in threads if name.startswith("vault-worker-")}) >= 2
    for token_set in token_sets:
        assert stored_tokens(token_set)[0] != before[token_set.pk]
    assert state.refresh_count("github", successful=True) == 6


@pytest.mark.django_db
@pytest.mark.parametrize("provider", ["github", "google-oauth2"])
def test_a_429_pauses_that_provider_for_its_retry_after(client, monkeypatch, provider):
    token_sets = _people(client, provider, 4)
    # One person also has the other provider: it is not rate-limited and is renewed as usual.
    other = "google-oauth2" if provider == "github" else "github"
    round_trip(client, other, email="person0@example.com")
    expire(TokenSet.objects.get(provider=other))
    body, headers = RATE_LIMITED[provider]
    seen = patch_transport(
        monkeypatch,
        when=lambda method, url: url.endswith(TOKEN_PATHS[provider]),
        answer=http_status(429, body, headers),
    )
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 refresh"):  # a failure exits non-zero, as before
        call_command("vault_refresh", "--workers", "1", "--no-warnings", stdout=out, stderr=io.StringIO())
    summary = out.getvalue()
    title = "GitHub" if provider == "github" else "Google"
    assert "Refresh: 5 due, 1 refreshed" in summary
    assert f"Rate-limited (429; the rest waits for a later run): {title} asked to wait 120 s" in summary
    assert "3 rate limited" in summary
    assert len(seen) == 1  # one request, then the provider was left alone
    failed = [ts for ts in token_sets if TokenSet.objects.get(pk=ts.pk).last_error_code == "rate_limited"]
    assert len(failed) == 1
    paused_until = TokenSet.objects.get(pk=failed[0].pk).retry_not_before
    assert timezone.now() + timedelta(seconds=100) < paused_until <= timezone.now() + timedelta(seconds=121)
    assert all(ts.status == TokenSet.Status.ACTIVE for ts in TokenSet.objects.all())  # nothing disabled

    # The next run (JSON for cron) still leaves the paused set alone, and tries the others again.
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("vault_refresh", "--json", "--workers", "1", "--no-warnings", stdout=out)
    counts = json.loads(out.getvalue())["refresh"]
    assert counts["paused"] == {provider: 120}
    assert counts["backed_off"] == {"rate_limited": 3}
    assert counts["failed"] == {"provider_unavailable": 1}
    assert len(seen) == 2


def _plan(queryset) -> str:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET enable_seqscan = off")  # whether an index *can* serve it
        try:
            return json.dumps(json.loads(queryset.explain(format="json")))
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SET enable_seqscan = on")
    return queryset.explain()


@pytest.mark.django_db
def test_the_refresh_selection_reads_the_token_sets_by_their_expiry_index(client):
    _people(client, "github", 3)
    horizon = timezone.now() + timedelta(seconds=600)
    first_page = refresh_selection.due_token_sets(horizon)
    last = first_page.first()
    next_page = first_page.filter(expires_at__gte=last.expires_at).exclude(
        expires_at=last.expires_at, pk__lte=last.pk
    )
    for queryset in (first_page, next_page):
        plan = _plan(queryset)
        if connection.vendor == "postgresql":
            nodes = _nodes(json.loads(plan)[0]["Plan"])
            assert not [
                n for n in nodes if n["Node Type"] == "Seq Scan" and n["Relation Name"] == "vault_tokenset"
            ]
            assert {n.get("Index Name") for n in nodes} & _expiry_indexes(), nodes
        else:
            assert "SEARCH vault_tokenset USING INDEX" in plan, plan
    assert [ts.pk for ts in refresh_selection.due_in_pages(horizon)] == [ts.pk for ts in first_page]


def _expiry_indexes() -> set[str]:
    """The token set indexes that lead with, or right after the status, hold the expiry."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'vault_tokenset'")
        return {name for name, definition in cursor.fetchall() if "expires_at" in definition}


def _nodes(plan: dict) -> list[dict]:
    found = [plan]
    for child in plan.get("Plans", []):
        found.extend(_nodes(child))
    return found


@pytest.mark.django_db
def test_a_dry_run_counts_every_page_and_calls_nobody(client, monkeypatch):
    _people(client, "github", 5)
    monkeypatch.setattr(refresh_selection, "SELECTION_PAGE", 2)
    report = refresh_expiring(within=600, dry_run=True)
    assert report.due == 5 and report.refreshed == 0
    assert state.refresh_count("github") == 0
