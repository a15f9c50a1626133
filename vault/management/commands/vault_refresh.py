"""For cron: refresh tokens that expire soon and retry pending revocations (counts only)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from vault.refresh import refresh_expiring
from vault.revocation import retry_pending

from ._common import bounded_int, keyring_or_fail


class Command(BaseCommand):
    # The keys are checked below with one clear line; the full system check would print a report.
    requires_system_checks: list[str] = []
    help = (
        "Refresh every linked token set whose access token expires within --within seconds, then retry "
        "revocations at the provider that failed before. Prints counts, never tokens."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--within",
            type=int,
            default=600,
            metavar="SECONDS",
            help="Refresh tokens expiring within this many seconds (default 600).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be done.")

    def handle(self, *args, within: int = 600, dry_run: bool = False, **options) -> None:
        bounded_int(within, name="--within", low=0, high=7 * 24 * 3600)
        keyring_or_fail()
        refresh = refresh_expiring(within=within, dry_run=dry_run)
        revocations = retry_pending(dry_run=dry_run)
        if dry_run:
            self.stdout.write(
                f"Dry run: {refresh.due} token set(s) would be refreshed, "
                f"{revocations.due} revocation(s) retried."
            )
            return
        failed = ", ".join(f"{code} {count}" for code, count in sorted(refresh.failed.items())) or "none"
        self.stdout.write(
            f"Refresh: {refresh.due} due, {refresh.refreshed} refreshed, "
            f"{refresh.already_fresh} already fresh, failed: {failed}"
        )
        if refresh.skipped:
            skipped = ", ".join(f"{code} {count}" for code, count in sorted(refresh.skipped.items()))
            self.stdout.write(f"Skipped (provider removed or issuer changed; not sent anywhere): {skipped}")
        self.stdout.write(
            f"Revocations: {revocations.due} due, {revocations.revoked} done, "
            f"{revocations.failed} failed (retried later), {revocations.gave_up} given up, "
            f"{revocations.key_fault} waiting for the right vault key, {revocations.busy} busy"
        )
