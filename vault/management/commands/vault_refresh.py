"""For cron: refresh tokens that expire soon, retry pending revocations, mail due warnings (counts only)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from accounts.providers import provider_title
from vault.command_output import Progress, counts
from vault.refresh import refresh_expiring
from vault.revocation import retry_pending
from vault.warnings import send_due_warnings

from ._common import bounded_int, keyring_or_fail


class Command(BaseCommand):
    # The keys are checked below with one clear line; the full system check would print a report.
    requires_system_checks: list[str] = []
    help = (
        "Refresh the stored tokens of every linked account whose access token expires within --within "
        "seconds, then retry revocations at the provider that failed before, then mail the warnings "
        "due today (agent keys expiring, connections needing Reconnect, renewals failing for a day; "
        "once a day each). "
        "Prints counts, never tokens."
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
        parser.add_argument(
            "--workers",
            type=int,
            default=4,
            help="Accounts refreshed at the same time (default 4; each holds its own database connection).",
        )
        parser.add_argument(
            "--json", dest="as_json", action="store_true", help="Print the counts as one JSON object."
        )
        parser.add_argument(
            "--no-warnings",
            dest="warnings",
            action="store_false",
            help="Do not mail people about expiring agent keys and connections that need attention.",
        )

    def handle(
        self,
        *args,
        within: int = 600,
        dry_run: bool = False,
        as_json: bool = False,
        workers: int = 4,
        warnings: bool = True,
        **options,
    ) -> None:
        bounded_int(within, name="--within", low=0, high=7 * 24 * 3600)
        bounded_int(workers, name="--workers", low=1, high=32)
        keyring_or_fail()
        # Progress goes to stderr on a terminal only: stdout stays one summary (or JSON) for cron.
        progress = Progress(self.stderr._out, label="Refresh")
        try:
            refresh = refresh_expiring(within=within, dry_run=dry_run, progress=progress, workers=workers)
        finally:
            progress.close()
        revocations = retry_pending(dry_run=dry_run)
        # After the refresh, so a connection it just found broken is mailed about in the same run.
        mailed = send_due_warnings(dry_run=dry_run) if warnings else None
        failures = sum(refresh.failed.values()) + revocations.failed + revocations.gave_up
        failures += mailed.failed if mailed else 0
        if as_json:
            self.stdout.write(_as_json(refresh, revocations, mailed, dry_run=dry_run))
        elif dry_run:
            self.stdout.write(
                f"Dry run: the tokens of {refresh.due} account(s) would be refreshed, "
                f"{revocations.due} revocation(s) retried"
                + (f", {mailed.sent} warning mail(s) sent." if mailed else ".")
            )
        else:
            self.stdout.write(_summary(refresh, revocations) + (_warnings_part(mailed) if mailed else ""))
        if failures and not dry_run:
            raise CommandError(
                f"{failures} refresh(es), revocation(s) or warning mail(s) failed: see the counts above."
            )


def _summary(refresh, revocations) -> str:
    """One line for cron mail and logs; parts only when they have something to say."""
    parts = [
        f"Refresh: {refresh.due} due, {refresh.refreshed} refreshed, "
        f"{refresh.already_fresh} already fresh, failed: {counts(refresh.failed)}"
    ]
    if refresh.backed_off:
        parts.append(
            f"Not tried, provider failed recently (back-off, retried later): {counts(refresh.backed_off)}"
        )
    if refresh.paused:
        parts.append(
            "Rate-limited (429; the rest waits for a later run): "
            + ", ".join(f"{provider_title(p)} asked to wait {s} s" for p, s in sorted(refresh.paused.items()))
        )
    if refresh.skipped:
        parts.append(
            f"Skipped (provider removed or issuer changed; not sent anywhere): {counts(refresh.skipped)}"
        )
    parts.append(
        f"Revocations: {revocations.due} due, {revocations.revoked} done, "
        f"{revocations.failed} failed (retried later), {revocations.gave_up} given up, "
        f"{revocations.key_fault} waiting for the right vault key, {revocations.busy} busy"
    )
    return "; ".join(parts)


def _warnings_part(mailed) -> str:
    return (
        f"; Warnings mailed: {mailed.key_expiring} agent key expiring, {mailed.reconnect_needed} "
        f"reconnect needed, {mailed.refresh_failing} renewal failing for a day ({mailed.already_sent} "
        f"already mailed today, {mailed.no_address} without a verified address, {mailed.failed} failed)"
    )


def _as_json(refresh, revocations, mailed, *, dry_run: bool) -> str:
    """Counts only: the reports hold no token, and nothing else is added here."""
    return json.dumps(
        {
            "dry_run": dry_run,
            "refresh": {
                "due": refresh.due,
                "refreshed": refresh.refreshed,
                "already_fresh": refresh.already_fresh,
                "failed": refresh.failed,
                "backed_off": refresh.backed_off,
                "paused": refresh.paused,
                "skipped": refresh.skipped,
            },
            "revocations": {
                "due": revocations.due,
                "revoked": revocations.revoked,
                "failed": revocations.failed,
                "gave_up": revocations.gave_up,
                "key_fault": revocations.key_fault,
                "busy": revocations.busy,
            },
            # null with --no-warnings: nothing was looked at.
            "warnings": mailed.as_dict() if mailed else None,
        },
        sort_keys=True,
    )
