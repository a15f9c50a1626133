"""Move the token hand-outs staged in Redis into the activity table now (vault/staged_records.py)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from redis.exceptions import RedisError

from vault.staged_records import drain_all, stream_key


class Command(BaseCommand):
    help = (
        "Move the token hand-outs staged in Redis into the activity table, exactly once. The site's "
        "own processes do this continuously; run it when none runs. Prints one line (a count)."
    )

    def handle(self, *args, **options) -> None:
        if stream_key() is None:
            self.stdout.write("Nothing is staged: the cache is not Redis, records go straight to the table.")
            return
        try:
            moved = drain_all(wait=10.0)
        except DatabaseError as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise CommandError(f"vault_drain: the database refused ({first_line})") from None
        except (RedisError, OSError) as error:
            raise CommandError(f"vault_drain: Redis did not answer ({type(error).__name__})") from None
        self.stdout.write(f"Moved {moved} staged record{'s' if moved != 1 else ''} into the activity table.")
