"""A table that grows without slowing anything (issue 17.2): on PostgreSQL the activity table is
partitioned by month by a migration that keeps every row of an existing database, and
``activity_retention`` drops whole old months and makes the coming ones; on SQLite the same command
deletes old rows in batches."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from accounts.activity_kinds import AccountKind
from accounts.models import User
from activity import partitions, recording
from activity.models import Activity
from activity.retention import enforce_retention
from vault import hotpath
from vault.activity_kinds import VaultKind

BEFORE = [("activity", "0001_initial")]
POSTGRES = connection.vendor == "postgresql"


def _table_facts() -> dict[str, object]:
    """What the database says about the table (PostgreSQL): its kind, keys and index names."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = 'accounts_activity'::regclass")
        (kind,) = cursor.fetchone()
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'accounts_activity'::regclass AND contype = 'p'"
        )
        (primary,) = cursor.fetchone()
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'accounts_activity'")
        indexes = {row[0] for row in cursor.fetchall()}
    return {"kind": kind, "primary": primary, "indexes": indexes}


@pytest.mark.django_db(transaction=True)
def test_the_partitioning_migration_keeps_every_row_and_the_id_sequence():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE[0]).apps
    person = old.get_model("accounts", "User").objects.create(username="old-person", email="old@example.com")
    OldActivity = old.get_model("activity", "Activity")
    now = timezone.now()
    written = []
    for days, kind in ((800, "signed_in"), (95, "linked"), (31, "token_issued"), (0, "signed_out")):
        entry = OldActivity.objects.create(
            user=person, kind=kind, message=f"{days} days ago", data={"d": days}
        )
        OldActivity.objects.filter(pk=entry.pk).update(created_at=now - timedelta(days=days))
        written.append(entry.pk)
    stray = OldActivity.objects.create(user=None, kind="link_refused", ip_address="203.0.113.9")
    OldActivity.objects.filter(pk=stray.pk).update(created_at=datetime(2101, 1, 1, tzinfo=UTC))
    before = {
        row["id"]: row
        for row in OldActivity.objects.values("id", "kind", "message", "data", "created_at", "user_id")
    }

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    after = {
        row["id"]: row
        for row in Activity.objects.values("id", "kind", "message", "data", "created_at", "user_id")
    }
    assert after == before
    # New rows continue the sequence, through the ORM and through the vault's fast insert alike.
    fresh = recording.record(kind=AccountKind.SIGNED_IN, user=User.objects.get(pk=person.pk))
    fast = recording.new_record(kind=VaultKind.TOKEN_ISSUED, user=fresh.user, provider="github")
    hotpath.insert_token_issued(fast)
    assert fresh.pk > max(before) and fast.pk == fresh.pk + 1
    assert Activity.objects.filter(user_id=person.pk).count() == 6
    if POSTGRES:
        facts = _table_facts()
        assert facts["kind"] == "p"
        assert facts["primary"] == "PRIMARY KEY (id, created_at)"
        assert {"activity_user_keyset_idx", "accounts_activity_agent_key_id_c7c66964"} <= facts["indexes"]
        labels = [m.label for m in partitions.months()]
        assert labels[0] == f"{(now - timedelta(days=800)):%Y-%m}" and f"{now:%Y-%m}" in labels
        assert len(labels) >= 800 // 31 + 3  # every month with rows, and three ahead

    # And back: a plain table with the same rows, whose identity continues after the last id.
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE[0]).apps
    OldActivity = old.get_model("activity", "Activity")
    assert OldActivity.objects.count() == 7
    again = OldActivity.objects.create(user=None, kind="link_refused")
    assert again.pk == fast.pk + 1
    if POSTGRES:
        assert _table_facts()["primary"] == "PRIMARY KEY (id)"
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert Activity.objects.count() == 8


def _at(when: datetime, message: str) -> Activity:
    entry = recording.record(kind=AccountKind.SIGNED_IN, user=None, message=message)
    Activity.objects.filter(pk=entry.pk).update(created_at=when)
    return entry


@pytest.mark.django_db
def test_retention_drops_old_months_whole_and_keeps_the_recent_ones():
    now = datetime.now(UTC)
    for days in (520, 480, 440):
        _at(now - timedelta(days=days), f"old {days}")
    kept = [_at(now - timedelta(days=days), f"recent {days}") for days in (300, 10, 0)]
    if POSTGRES:
        # A database that has run for a while has partitions for those old months already.
        for days in (520, 480, 440):
            partitions.create(partitions.Month.of(now - timedelta(days=days)))
        cutoff_month = partitions.Month.of(now - timedelta(days=400))
        partitions.create(cutoff_month)

    preview = enforce_retention(days=400, now=now, dry_run=True)
    assert Activity.objects.count() == 6  # a dry run changes nothing
    result = enforce_retention(days=400, now=now)

    assert sorted(Activity.objects.values_list("message", flat=True)) == sorted(e.message for e in kept)
    assert preview.dry_run and not result.dry_run
    if POSTGRES:
        old_months = sorted({f"{now - timedelta(days=d):%Y-%m}" for d in (520, 480, 440)})
        assert result.dropped_months == preview.dropped_months == old_months
        labels = [m.label for m in partitions.months()]
        assert not set(old_months) & set(labels)
        assert cutoff_month.label in labels  # partly inside the retention: kept whole
        ahead = partitions.Month.of(now)
        for _ in range(3):
            ahead = partitions.Month(ahead.end)
            assert ahead.label in labels
        assert "drop 3 month(s)" in result.summary()
    else:
        assert preview.rows_deleted == result.rows_deleted == 3
        assert result.summary().startswith("activity_retention: delete 3 row(s) older than")


@pytest.mark.django_db
def test_an_insert_outside_every_month_lands_in_the_default_partition_and_moves_when_its_month_comes():
    far = datetime(2099, 5, 17, tzinfo=UTC)
    entry = _at(far, "from the future")
    assert Activity.objects.get(pk=entry.pk).created_at == far
    if POSTGRES:
        month = partitions.Month.of(far)
        assert month not in partitions.months()
        assert partitions.create(month) == 1  # the row moved out of the default partition
        assert month in partitions.months()
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM accounts_activity_p2099_05")
            assert cursor.fetchone()[0] == 1
    assert Activity.objects.get(pk=entry.pk).message == "from the future"


@pytest.mark.django_db
def test_the_command_says_one_line_or_json_and_fails_clearly(capsys, settings):
    now = datetime.now(UTC)
    _at(now - timedelta(days=3), "three days")
    _at(now - timedelta(days=2), "two days")
    if not POSTGRES:
        call_command("activity_retention", "--dry-run", "--days", "1")
        line = capsys.readouterr().out.strip()
        assert line.startswith("activity_retention: would delete 2 row(s) older than")
        assert Activity.objects.count() == 2
    call_command("activity_retention", "--json", "--days", "400")
    report = json.loads(capsys.readouterr().out)
    assert report["dry_run"] is False and report["rows_deleted"] == 0
    assert report["partitioned"] is POSTGRES
    assert Activity.objects.count() == 2

    settings.ACTIVITY_RETENTION_DAYS = 0
    with pytest.raises(CommandError) as refused:
        call_command("activity_retention")
    assert str(refused.value) == (
        "activity_retention: the retention must be at least 1 day (ACTIVITY_RETENTION_DAYS is 0)"
    )
    assert Activity.objects.count() == 2
