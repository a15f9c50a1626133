"""Re-encrypt every stored value under the first VAULT_KEYS key; check a key can be retired."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from vault.command_output import Progress
from vault.rotation import KeyStillNeeded, check_retirable, rotate_keys

from ._common import bounded_int, keyring_or_fail


class Command(BaseCommand):
    # The keys are checked below with one clear line; the full system check would print a report.
    requires_system_checks: list[str] = []
    help = (
        "Re-encrypt every account's stored tokens not under the first key in VAULT_KEYS, in batches (one "
        "transaction each; safe to interrupt and run again). With --retire NAME, only check that no stored "
        "value uses NAME any more, and fail if one does."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--batch-size", type=int, default=100, help="Accounts' tokens per transaction (default 100)."
        )
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be re-encrypted.")
        parser.add_argument(
            "--retire", metavar="NAME", help="Check that key NAME is unused and can be removed."
        )
        parser.add_argument("--json", dest="as_json", action="store_true", help="Print the counts as JSON.")

    def handle(
        self,
        *args,
        batch_size: int = 100,
        dry_run: bool = False,
        retire: str | None = None,
        as_json: bool = False,
        **options,
    ) -> None:
        bounded_int(batch_size, name="--batch-size", low=1, high=10_000)
        keyring = keyring_or_fail()
        if retire is not None:
            self._retire(retire, keyring)
            return
        # One line rewritten in place on a terminal (stderr); nothing per batch otherwise.
        progress = Progress(self.stderr._out, label="Re-encrypted")
        try:
            report = rotate_keys(batch_size=batch_size, dry_run=dry_run, progress=progress)
        finally:
            progress.close()
        if as_json:
            self.stdout.write(
                json.dumps(
                    {
                        "dry_run": dry_run,
                        "primary": report.primary,
                        "pending": report.pending,
                        "reencrypted": report.reencrypted,
                        "batches": report.batches,
                        "failed": report.failed,
                    },
                    sort_keys=True,
                )
            )
        elif dry_run:
            batches = -(-report.pending // batch_size)
            self.stdout.write(
                f"Dry run: the tokens of {report.pending} account(s) would be re-encrypted under "
                f"{report.primary} in {batches} batch(es)."
            )
        elif not report.pending:
            self.stdout.write(f"Nothing to do: every stored token is under {report.primary}.")
        else:
            self.stdout.write(
                f"Re-encrypted the tokens of {report.reencrypted} account(s) under {report.primary} in "
                f"{report.batches} batch(es); {report.failed} failed."
            )
        if report.failed:
            raise CommandError(
                f"Tokens of {report.failed} account(s) could not be decrypted and were left as they are "
                "(vault_status --verify counts them)."
            )

    def _retire(self, name: str, keyring) -> None:
        try:
            check_retirable(name, keyring)
        except KeyStillNeeded as error:
            raise CommandError(str(error)) from None
        where = "" if name in keyring.names else " (it is not in VAULT_KEYS either)"
        self.stdout.write(f"No stored value uses key {name}{where}: it can be removed from VAULT_KEYS.")
