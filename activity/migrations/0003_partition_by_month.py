"""On PostgreSQL, range-partition the activity table by month of ``created_at`` (issue 17.2).

A table that grows by a row per token handed out is then trimmed by dropping whole months
(``manage.py activity_retention``) instead of deleting rows. Done in one transaction, on a database
with rows in it: the table is renamed, a partitioned table of the same columns takes its name, every
row is copied, the id sequence continues where it was, and every index and foreign key is made again
under its own name. The primary key becomes ``(id, created_at)`` in SQL (a partitioned table's keys
must contain the partition key); the model state does not change, so ``makemigrations`` stays clean.
A default partition takes rows outside the months made so far, so an insert never fails.
SQLite (and any other database) is left as it is. Reversible: the way back makes a plain table again.
"""

from datetime import UTC, datetime

from django.db import migrations

TABLE = "accounts_activity"
MONTHS_AHEAD = 3


def _next_month(month: datetime) -> datetime:
    return datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)


def _month_of(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def _literal(moment: datetime) -> str:
    return f"'{moment:%Y-%m-%d %H:%M:%S}+00'"


def _keys_and_indexes(cursor, table: str) -> tuple[list[str], list[tuple[str, str]], tuple[str, bool]]:
    """What must be made again on the new table: index definitions (not the primary key's),
    foreign keys, and the id sequence's position."""
    cursor.execute(
        "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid = %s::regclass "
        "AND NOT i.indisprimary ORDER BY i.indexrelid",
        [table],
    )
    indexes = [row[0] for row in cursor.fetchall()]
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass "
        "AND contype = 'f' ORDER BY conname",
        [table],
    )
    foreign_keys = cursor.fetchall()
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
    (sequence,) = cursor.fetchone()
    cursor.execute(f"SELECT last_value, is_called FROM {sequence}")  # noqa: S608 (a name PostgreSQL gave)
    return indexes, foreign_keys, cursor.fetchone()


def _make_again(cursor, indexes, foreign_keys, position, *, primary_key: str) -> None:
    cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY ({primary_key})")
    for definition in indexes:
        # A partitioned table's index reads "ON ONLY <table>"; a plain table's "ON <table>".
        cursor.execute(definition.replace(f" ON ONLY public.{TABLE} ", f" ON public.{TABLE} "))
    for name, definition in foreign_keys:
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {name} {definition}")
    cursor.execute(f"SELECT setval(pg_get_serial_sequence('{TABLE}', 'id'), %s, %s)", list(position))


def partition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
        indexes, foreign_keys, position = _keys_and_indexes(cursor, TABLE)
        cursor.execute(f"SELECT min(created_at), now() FROM {TABLE}")  # noqa: S608
        oldest, now = cursor.fetchone()
        cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {TABLE}_unpartitioned")
        cursor.execute(
            f"CREATE TABLE {TABLE} (LIKE {TABLE}_unpartitioned INCLUDING STORAGE INCLUDING COMMENTS) "
            "PARTITION BY RANGE (created_at)"
        )
        cursor.execute(f"CREATE TABLE {TABLE}_default PARTITION OF {TABLE} DEFAULT")
        # A month for every month that has rows, up to a few months ahead of now.
        month, last = _month_of(min(oldest or now, now)), _month_of(now)
        for _ in range(MONTHS_AHEAD):
            last = _next_month(last)
        while month <= last:
            cursor.execute(
                f"CREATE TABLE {TABLE}_p{month:%Y_%m} PARTITION OF {TABLE} "
                f"FOR VALUES FROM ({_literal(month)}) TO ({_literal(_next_month(month))})"
            )
            month = _next_month(month)
        cursor.execute(f"INSERT INTO {TABLE} SELECT * FROM {TABLE}_unpartitioned")  # noqa: S608
        # The old table's identity sequence goes with it; a sequence of the same name takes over.
        cursor.execute(f"DROP TABLE {TABLE}_unpartitioned")
        cursor.execute(f"CREATE SEQUENCE {TABLE}_id_seq OWNED BY {TABLE}.id")
        cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id SET DEFAULT nextval('{TABLE}_id_seq')")
        _make_again(cursor, indexes, foreign_keys, position, primary_key="id, created_at")


def unpartition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
        indexes, foreign_keys, position = _keys_and_indexes(cursor, TABLE)
        cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {TABLE}_partitioned")
        cursor.execute(f"CREATE TABLE {TABLE} (LIKE {TABLE}_partitioned INCLUDING STORAGE INCLUDING COMMENTS)")
        cursor.execute(f"INSERT INTO {TABLE} SELECT * FROM {TABLE}_partitioned")  # noqa: S608
        cursor.execute(f"DROP TABLE {TABLE}_partitioned")  # its partitions and sequence with it
        cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY")
        _make_again(cursor, indexes, foreign_keys, position, primary_key="id")


class Migration(migrations.Migration):
    dependencies = [("activity", "0002_user_keyset_index")]

    operations = [migrations.RunPython(partition, unpartition, elidable=False)]
