"""Keeping activity for ``ACTIVITY_RETENTION_DAYS``: whole months dropped, the coming ones made ahead.

On PostgreSQL (partitioned by migration 0003) a month leaves when all of it is older than the
retention, by dropping its partition: no delete, no vacuum debt, the same cost at any table size.
Elsewhere (SQLite) old rows are deleted in small batches, each its own transaction, so a large
backlog never holds the database's write lock for long.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from . import partitions
from .models import Activity

#: Months made ahead of the current one, so inserts never reach the default partition.
MONTHS_AHEAD = 3
#: Rows deleted per transaction where there are no partitions.
DELETE_BATCH = 5000


@dataclass
class RetentionResult:
    """What a run did (or, with ``dry_run``, would do). Counts and month names only."""

    cutoff: datetime
    dry_run: bool
    partitioned: bool
    dropped_months: list[str] = field(default_factory=list)
    created_months: list[str] = field(default_factory=list)
    rows_deleted: int = 0
    rows_in_dropped_months: int = 0

    def summary(self) -> str:
        verb = "would " if self.dry_run else ""
        cutoff = f"older than {self.cutoff:%Y-%m-%d %H:%M} UTC"
        if not self.partitioned:
            return f"activity_retention: {verb}delete {self.rows_deleted} row(s) {cutoff}."
        dropped = ", ".join(self.dropped_months) or "none"
        created = ", ".join(self.created_months) or "none"
        return (
            f"activity_retention: {verb}drop {len(self.dropped_months)} month(s) {cutoff} ({dropped}; "
            f"about {self.rows_in_dropped_months} row(s)), {verb}create {len(self.created_months)} "
            f"ahead ({created}), {verb}delete {self.rows_deleted} stray row(s) of the default partition."
        )

    def as_dict(self) -> dict[str, object]:
        found = asdict(self)
        found["cutoff"] = self.cutoff.isoformat()
        return found


def enforce_retention(
    *, days: int, now: datetime | None = None, dry_run: bool = False, ahead: int = MONTHS_AHEAD
) -> RetentionResult:
    """Remove activity older than ``days`` and (PostgreSQL) make the next ``ahead`` months."""
    if days < 1:
        raise ValueError(f"the retention must be at least 1 day (ACTIVITY_RETENTION_DAYS is {days})")
    if ahead < 0:
        raise ValueError("months ahead cannot be negative")
    now = now or timezone.now()
    cutoff = now - timedelta(days=days)
    if not partitions.is_partitioned():
        return _delete_in_batches(cutoff=cutoff, dry_run=dry_run)
    result = RetentionResult(cutoff=cutoff, dry_run=dry_run, partitioned=True)
    with transaction.atomic():
        there = partitions.months()
        wanted = [partitions.Month.of(now)]
        for _ in range(ahead):
            wanted.append(partitions.Month(wanted[-1].end))
        for month in there:
            if month.end <= cutoff:
                result.dropped_months.append(month.label)
                result.rows_in_dropped_months += partitions.estimated_rows(month)
                if not dry_run:
                    partitions.drop(month)
        for month in wanted:
            if month not in there:
                result.created_months.append(month.label)
                if not dry_run:
                    partitions.create(month)
        if dry_run:
            result.rows_deleted = partitions.default_rows_before(cutoff)
        else:
            result.rows_deleted = partitions.trim_default(cutoff)
    return result


def _delete_in_batches(*, cutoff: datetime, dry_run: bool) -> RetentionResult:
    result = RetentionResult(cutoff=cutoff, dry_run=dry_run, partitioned=False)
    old = Activity.objects.filter(created_at__lt=cutoff)
    if dry_run:
        result.rows_deleted = old.count()
        return result
    while True:
        with transaction.atomic():
            batch = list(old.order_by("id").values_list("id", flat=True)[:DELETE_BATCH])
            if not batch:
                return result
            result.rows_deleted += Activity.objects.filter(pk__in=batch).delete()[0]
