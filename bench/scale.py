"""What grows: key rotation over every token set, ``vault_refresh`` over many expiring token sets
against the sandbox, and the activity table at millions of rows (seeded by SQL).

Each runs the site's real command in a child process (``bench/peak_rss.py`` reports its peak
memory) or measures the page and the token request in-process before and after seeding.
"""

from __future__ import annotations

import io
import os
import sys
import time
from datetime import timedelta

from bench.env import ROOT, run_child, vault_key
from bench.inprocess import explain_captured, post_token, timed_ms

#: Token sets registered with the sandbox per transaction (``make_refreshable``).
REFRESH_BATCH = 5000


def rotate(env: dict[str, str], *, batch_size: int = 100) -> dict:
    from django.conf import settings

    from vault.models import TokenSet

    names = [entry.split(":", 1)[0] for entry in env["VAULT_KEYS"].split(",")]
    new_name = f"bench-{len(names) + 1}"
    env["VAULT_KEYS"] = f"{new_name}:{vault_key()},{env['VAULT_KEYS']}"
    os.environ["VAULT_KEYS"] = env["VAULT_KEYS"]
    settings.VAULT_KEYS = env["VAULT_KEYS"]
    rows = TokenSet.objects.count()
    command = [sys.executable, "manage.py", "vault_rotate_keys", "--batch-size", str(batch_size)]
    idle = run_child([*command, "--dry-run"], env)
    result = run_child(command, env)
    if result["returncode"] != 0:
        raise RuntimeError(f"vault_rotate_keys failed:\n{result['output'][-2000:]}")
    rotated = TokenSet.objects.filter(key_name=new_name).count()
    # Minus the start-up (a dry run's time), unless a loaded machine made that the larger part.
    work_seconds = result["seconds"] - idle["seconds"]
    if work_seconds < result["seconds"] / 2:
        work_seconds = result["seconds"]
    return {
        "rows": rows,
        "rotated": rotated,
        "batch_size": batch_size,
        "seconds": round(result["seconds"], 3),
        "startup_seconds": round(idle["seconds"], 3),
        "rows_per_s": round(rotated / work_seconds, 1),
        "peak_rss_mb": round(result["max_rss_kb"] / 1024, 1),
        "startup_rss_mb": round(idle["max_rss_kb"] / 1024, 1),
        "summary": result["output"].strip().splitlines()[-1] if result["output"].strip() else "",
    }


def make_refreshable(count: int) -> list[int]:
    """Take the ``count`` newest seeded GitHub token sets and make them due: each one's refresh
    token is registered with the sandbox (a grant and a refresh-token row, by hash, as the sandbox
    stores what it issued; one it issued itself, in an earlier run, is known already), and its
    access token is an hour-long one with a minute left (due at any ``--within`` of a minute or
    more, whatever ``vault.stored.needs_refresh``'s minimum age). Two bulk inserts and one update
    per batch, so 100,000 take seconds. Returns their ids."""
    from django.conf import settings
    from django.db import transaction
    from django.utils import timezone

    from sandbox.models import Grant, RefreshToken
    from sandbox.providers import hash_token
    from vault.models import TokenSet

    ids = list(
        TokenSet.objects.filter(provider="github", identity__user__username__regex=r"^bench-[0-9]+$")
        .order_by("-pk")
        .values_list("pk", flat=True)[:count]
    )
    now = timezone.now()
    for start in range(0, len(ids), REFRESH_BATCH):
        batch = ids[start : start + REFRESH_BATCH]
        with transaction.atomic():
            hashes = {
                row.pk: (row.uid, hash_token(row.read_refresh_token()))
                for row in TokenSet.objects.filter(pk__in=batch).only(
                    "pk", "uid", "owner_id", "provider", "key_name", "refresh_token_encrypted", "identity_id"
                )
            }
            known = set(
                RefreshToken.objects.filter(
                    token_hash__in=[digest for _uid, digest in hashes.values()], rotated_at__isnull=True
                ).values_list("token_hash", flat=True)
            )
            new = [(uid, digest) for uid, digest in hashes.values() if digest not in known]
            grants = Grant.objects.bulk_create(
                [
                    Grant(
                        provider="github",
                        client_id=settings.SOCIAL_AUTH_GITHUB_KEY,
                        subject=uid,
                        email=f"{uid}@bench.example",
                        scopes="read:user user:email",
                    )
                    for uid, _digest in new
                ]
            )
            RefreshToken.objects.bulk_create(
                [
                    RefreshToken(token_hash=digest, grant=grant, scopes=grant.scopes)
                    for (_uid, digest), grant in zip(new, grants, strict=True)
                ]
            )
            TokenSet.objects.filter(pk__in=batch).update(
                expires_at=now + timedelta(seconds=60), issued_at=now - timedelta(seconds=3540)
            )
    return ids


def refresh_at_size(env: dict[str, str], *, count: int, workers: int) -> dict:
    """``vault_refresh`` over ``count`` due token sets against the sandbox's own gunicorn: refreshes
    per second (over the run minus the command's start-up, timed by a dry run that finds nothing
    due), peak memory against the start-up's, and its summary line. Compare ``peak_rss_mb`` at a
    small count (N=1,000) and at 100,000: the selection is read page by page and the workers hold
    a bounded queue, so the peak must not grow with the count."""
    from sandbox import state

    started = time.monotonic()
    ids = make_refreshable(count)
    prepared_seconds = time.monotonic() - started
    state.reset("github")
    command = [sys.executable, "manage.py", "vault_refresh", "--workers", str(workers), "--no-warnings"]
    # --within 0: nothing is due, so this times (and measures the memory of) the start-up alone;
    # a dry run over the due sets would walk all of them, which at 100,000 is no start-up.
    idle = run_child([*command, "--within", "0", "--dry-run"], env)
    result = run_child([*command, "--within", "600"], env)
    refreshed = state.refresh_count("github", successful=True)
    # Minus the start-up, unless a loaded machine made that the larger part.
    work_seconds = result["seconds"] - idle["seconds"]
    if work_seconds < result["seconds"] / 2:
        work_seconds = result["seconds"]
    summary = result["output"].strip().splitlines()[-1] if result["output"].strip() else ""
    peak_mb = round(result["max_rss_kb"] / 1024, 1)
    startup_mb = round(idle["max_rss_kb"] / 1024, 1)
    return {
        "due": len(ids),
        "workers": workers,
        "returncode": result["returncode"],
        "provider_refreshes": refreshed,
        "seconds": round(result["seconds"], 3),
        "work_seconds": round(work_seconds, 3),
        "prepare_seconds": round(prepared_seconds, 1),
        "refreshes_per_s": round(refreshed / work_seconds, 1),
        "peak_rss_mb": peak_mb,
        "startup_rss_mb": startup_mb,
        "rss_growth_mb": round(peak_mb - startup_mb, 1),
        "summary": summary[:400],
    }


ACTIVITY_CHUNK = 500_000
#: One in this many seeded activity rows belongs to the measured person (a long history to page).
HEAVY_SHARE = 50


def seed_activity(rows: int, *, heavy_user_id: int, days: int = 60, older_than_days: int = 0) -> float:
    """``rows`` activity records by one SQL statement per chunk (``generate_series``), spread
    evenly over ``days`` days ending ``older_than_days`` ago, over every seeded user; one row in
    ``HEAVY_SHARE`` belongs to ``heavy_user_id``. Returns seconds."""
    from django.db import connection

    from vault.activity_kinds import VaultKind

    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(id), max(id) FROM accounts_user WHERE username ~ '^bench-[0-9]+$'")
        low, high = cursor.fetchone()
        span = high - low + 1
        step_ms = max(1, days * 86_400_000 // max(1, rows))
        for offset in range(0, rows, ACTIVITY_CHUNK):
            size = min(ACTIVITY_CHUNK, rows - offset)
            cursor.execute(
                "INSERT INTO accounts_activity (user_id, actor_id, kind, provider, uid, identity_id, "
                "agent_key_id, message, data, ip_address, created_at) "
                "SELECT CASE WHEN g %% %s = 0 THEN %s ELSE %s + (g %% %s) END, NULL, %s, 'github', '', "
                "NULL, NULL, 'Agent ''bench'' got a GitHub token', '{\"agent\": \"bench\"}'::jsonb, "
                "'127.0.0.1', "
                "now() - make_interval(days => %s) - (g::bigint * %s) * interval '1 millisecond' "
                "FROM generate_series(%s, %s) AS g",
                [
                    HEAVY_SHARE,
                    heavy_user_id,
                    low,
                    span,
                    VaultKind.TOKEN_ISSUED.value,
                    older_than_days,
                    step_ms,
                    offset + 1,
                    offset + size,
                ],
            )
        cursor.execute("ANALYZE accounts_activity")
    return time.monotonic() - started


def _history(user_id: int) -> int:
    from activity.models import Activity

    return Activity.objects.filter(user_id=user_id).count()


def _deep_cursor_url(*, user_id: int, depth: int) -> str | None:
    """The activity page's URL for the page ``depth`` rows down the person's history, in the page's
    own keyset form (``?before=<cursor>``, written by ``activity.listing.Cursor`` as its "older"
    link writes it), or None when the history is not that long."""
    from activity.listing import Cursor
    from activity.models import Activity

    row = Activity.objects.filter(user_id=user_id).order_by("-created_at", "-id")[depth : depth + 1].first()
    return None if row is None else f"/settings/activity/?before={Cursor.of(row).text()}"


def make_months(*, start, end) -> list[str]:
    """The monthly activity partitions from ``start`` to ``end`` that are missing (PostgreSQL,
    partitioned table), made as the daily ``activity_retention`` run would have made them."""
    from activity import partitions

    if not partitions.is_partitioned():
        return []
    there = set(partitions.months())
    month = partitions.Month.of(start)
    made = []
    while month.start <= end:
        if month not in there:
            partitions.create(month)
            made.append(month.label)
        month = partitions.Month(month.end)
    return made


def activity_costs(*, client, key: str, person) -> dict:
    """Token request and activity page (first page and a deep one) in-process: median ms and queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from vault import staged_records

    client.force_login(person)
    first = client.get("/settings/activity/")
    staged_records.drain_all()
    out = {
        "token_request_ms": timed_ms(lambda: post_token(client, key), 200),
        "activity_first_ms": timed_ms(lambda: client.get("/settings/activity/"), 30),
        "activity_first_status": first.status_code,
    }
    with CaptureQueriesContext(connection) as captured:
        client.get("/settings/activity/")
    out["activity_first_queries"] = len(captured.captured_queries)
    # The records of those token requests, staged in Redis, go into the table as the site's
    # drainer moves them: one statement for the batch, the table as big as it is.
    waiting = staged_records.waiting()
    started = time.perf_counter()
    moved = staged_records.drain_all()
    out["records_moved"] = moved
    out["move_ms_per_record"] = round((time.perf_counter() - started) * 1000 / max(1, moved), 4)
    out["records_waiting_before_move"] = waiting
    deep = _deep_cursor_url(user_id=person.pk, depth=min(10_000, _history(person.pk) // 2))
    out["activity_deep_url"] = deep and deep.split("?")[0] + "?before=…"
    if deep:
        out["activity_deep_ms"] = timed_ms(lambda: client.get(deep), 30)
        with CaptureQueriesContext(connection) as captured:
            response = client.get(deep)
        out["activity_deep_status"] = response.status_code
        out["activity_deep_queries"] = len(captured.captured_queries)
        out["activity_deep_plans"] = explain_captured(lambda: client.get(deep))
    return out


def retention(env: dict[str, str]) -> dict:
    """``manage.py activity_retention`` (issue 17.2), timed in this process (a child's start-up on
    a loaded machine would drown a sub-second figure): how long, and how many rows went."""
    from django.core.management import call_command

    from activity.models import Activity

    command_file = ROOT / "activity" / "management" / "commands" / "activity_retention.py"
    if not command_file.exists():
        return {"ran": False, "reason": "manage.py activity_retention does not exist yet"}
    before = Activity.objects.count()
    out = io.StringIO()
    started = time.perf_counter()
    try:
        call_command("activity_retention", stdout=out)
    except Exception as error:  # reported with the results, not fatal to the run
        return {"ran": False, "reason": f"{type(error).__name__}: {str(error)[:200]}"}
    seconds = time.perf_counter() - started
    return {
        "ran": True,
        "work_seconds": round(seconds, 3),
        "rows_removed": before - Activity.objects.count(),
        "output": out.getvalue().strip()[-400:],
    }
