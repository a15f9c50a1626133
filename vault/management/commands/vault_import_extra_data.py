"""Move plaintext tokens left in ``extra_data`` by a stock social-auth install into the vault."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from vault.plaintext import import_plaintext_tokens

from ._common import keyring_or_fail


class Command(BaseCommand):
    requires_system_checks: list[str] = []  # its own deploy warning is what this command fixes
    help = (
        "Find access and refresh tokens stored in plaintext in social-auth's extra_data (a stock "
        "social-auth install leaves them there), encrypt them into the vault and scrub them from "
        "extra_data, keeping the non-secret fields. Prints counts, never tokens. Run with --dry-run first."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="only count; change nothing")

    def handle(self, *args, dry_run: bool = False, **options) -> None:
        keyring_or_fail()
        report = import_plaintext_tokens(dry_run=dry_run)
        if dry_run:
            self.stdout.write(
                f"Would move plaintext tokens of {report.found} linked account(s) into the vault "
                "(dry run: nothing changed)."
            )
            return
        self.stdout.write(
            f"Plaintext tokens found on {report.found} linked account(s): {report.moved} moved into the "
            f"vault, {report.already_in_vault} already in the vault (plaintext dropped), "
            f"{report.sent_to_revocation} on retired profiles sent to revocation, "
            f"{report.nothing_usable} without a usable access token; {report.scrubbed} scrubbed."
        )
