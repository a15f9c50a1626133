"""The activity table's monthly partitions on PostgreSQL: list, create ahead, drop whole months.

The one module besides the vault's hot path that writes SQL by hand: partitions are DDL the ORM
has no words for. Names follow ``accounts_activity_pYYYY_MM`` (made by migration 0003 and here),
each holding ``[first of the month, first of the next)`` in UTC; ``accounts_activity_default``
takes any row outside them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection

TABLE = "accounts_activity"
DEFAULT_PARTITION = f"{TABLE}_default"
_MONTHLY = re.compile(rf"^{TABLE}_p(\d{{4}})_(\d{{2}})$")


@dataclass(frozen=True, order=True)
class Month:
    """One monthly partition: its first instant, its table's name, and the first of the next month."""

    start: datetime

    @property
    def name(self) -> str:
        return f"{TABLE}_p{self.start:%Y_%m}"

    @property
    def end(self) -> datetime:
        return datetime(self.start.year + self.start.month // 12, self.start.month % 12 + 1, 1, tzinfo=UTC)

    @property
    def label(self) -> str:
        return f"{self.start:%Y-%m}"

    @classmethod
    def of(cls, moment: datetime) -> Month:
        moment = moment.astimezone(UTC)
        return cls(datetime(moment.year, moment.month, 1, tzinfo=UTC))


def is_partitioned() -> bool:
    """Whether the activity table is partitioned here (PostgreSQL after migration 0003)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", [TABLE])
        (kind,) = cursor.fetchone()
    return kind == "p"


def months() -> list[Month]:
    """The monthly partitions there are, oldest first."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            [TABLE],
        )
        names = [row[0] for row in cursor.fetchall()]
    found = [_MONTHLY.match(name) for name in names]
    return sorted(Month(datetime(int(m[1]), int(m[2]), 1, tzinfo=UTC)) for m in found if m)


def _literal(moment: datetime) -> str:
    # Made here from a datetime, never from input: DDL takes no parameters.
    return f"'{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}+00'"


def create(month: Month) -> int:
    """Make ``month``'s partition; rows the default partition holds for it move in first, so the
    attach never fails. Returns how many rows moved."""
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {month.name} (LIKE {TABLE} INCLUDING STORAGE INCLUDING COMMENTS)")
        cursor.execute(
            f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} "  # noqa: S608
            f"WHERE created_at >= {_literal(month.start)} AND created_at < {_literal(month.end)} "
            f"RETURNING *) INSERT INTO {month.name} SELECT * FROM moved"
        )
        moved = cursor.rowcount
        cursor.execute(
            f"ALTER TABLE {TABLE} ATTACH PARTITION {month.name} "
            f"FOR VALUES FROM ({_literal(month.start)}) TO ({_literal(month.end)})"
        )
    return moved


def drop(month: Month) -> None:
    """Drop ``month``'s partition and its rows: no row-by-row delete, no table bloat left behind."""
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {month.name}")


def estimated_rows(month: Month) -> int:
    """PostgreSQL's own estimate of a partition's rows (no scan); 0 before it was ever analysed."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [month.name])
        (estimate,) = cursor.fetchone()
    return max(int(estimate), 0)


def trim_default(cutoff: datetime) -> int:
    """Delete the default partition's rows older than ``cutoff`` (rows no month took); their count."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {DEFAULT_PARTITION} WHERE created_at < {_literal(cutoff)}"  # noqa: S608
        )
        return cursor.rowcount


def default_rows_before(cutoff: datetime) -> int:
    """How many rows ``trim_default(cutoff)`` would delete."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM {DEFAULT_PARTITION} WHERE created_at < {_literal(cutoff)}"  # noqa: S608
        )
        (count,) = cursor.fetchone()
    return count
