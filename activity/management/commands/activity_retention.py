"""Keep ``ACTIVITY_RETENTION_DAYS`` of activity: drop older months, make the coming ones (daily cron)."""

from __future__ import annotations

import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from activity.retention import MONTHS_AHEAD, enforce_retention


class Command(BaseCommand):
    help = (
        "Remove activity older than ACTIVITY_RETENTION_DAYS: on PostgreSQL by dropping whole monthly "
        "partitions (and making the next months' partitions ahead), elsewhere by deleting rows in "
        "batches. Prints one summary line (counts, never a record's content)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="say what would go, change nothing")
        parser.add_argument("--json", action="store_true", dest="as_json", help="print the summary as JSON")
        parser.add_argument(
            "--days", type=int, default=None, help="keep this many days instead of ACTIVITY_RETENTION_DAYS"
        )
        parser.add_argument(
            "--ahead", type=int, default=MONTHS_AHEAD, help=f"months made ahead (default {MONTHS_AHEAD})"
        )

    def handle(
        self,
        *args,
        dry_run: bool = False,
        as_json: bool = False,
        days: int | None = None,
        ahead: int,
        **options,
    ) -> None:
        days = settings.ACTIVITY_RETENTION_DAYS if days is None else days
        try:
            result = enforce_retention(days=days, dry_run=dry_run, ahead=ahead)
        except ValueError as error:
            raise CommandError(f"activity_retention: {error}") from None
        except DatabaseError as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise CommandError(
                f"activity_retention: the database refused ({first_line}); nothing changed"
            ) from None
        self.stdout.write(json.dumps(result.as_dict()) if as_json else result.summary())
