"""Counts of token sets by status and by vault key; ``--verify`` decrypts everything (counts only)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from vault.status_report import status_report, verify_all

from ._common import keyring_or_fail


class Command(BaseCommand):
    # The keys are checked below with one clear line; the full system check would print a report.
    requires_system_checks: list[str] = []
    help = (
        "Show how many accounts have stored tokens, by status and by vault key (never a token). "
        "With --verify, decrypt every stored value and count the ones that fail; exits non-zero if any does."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--verify",
            action="store_true",
            help="Decrypt every stored value (nothing is printed but counts).",
        )

    def handle(self, *args, verify: bool = False, **options) -> None:
        keyring = keyring_or_fail()
        report = status_report(keyring)
        linked = report.total - report.awaiting_revocation
        self.stdout.write(
            f"Stored tokens: {report.total} account(s) ({linked} linked, "
            f"{report.awaiting_revocation} removed, awaiting revocation)"
        )
        for status, count in report.by_status.items():
            self.stdout.write(f"  {status.replace('_', ' ')}: {count}")
        if report.revocation_waiting_for_key:
            self.stdout.write(
                f"  awaiting revocation, waiting for the right vault key (tokens do not decrypt): "
                f"{report.revocation_waiting_for_key}"
            )
        for name in report.configured_keys:
            role = " (encrypts new values)" if name == report.primary else ""
            self.stdout.write(f"  key {name}{role}: {report.by_key.get(name, 0)}")
        for name in report.unknown_keys:
            self.stdout.write(f"  key {name} (NOT in VAULT_KEYS): {report.by_key[name]}")
        if verify:
            report = verify_all(keyring)
            failed = sum(report.failures.values())
            self.stdout.write(
                f"Verified the stored tokens of {report.checked} account(s): {report.ok} ok, {failed} failed"
            )
            for reason, count in sorted(report.failures.items()):
                self.stdout.write(f"  failed ({reason}): {count}")
            if failed:
                raise CommandError(f"Tokens of {failed} account(s) failed to decrypt; see the counts above.")
