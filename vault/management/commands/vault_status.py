"""Counts of token sets by status and by vault key; ``--verify`` decrypts everything (counts only)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count

from vault.models import TokenSet
from vault.rotation import verify_all

from ._common import keyring_or_fail


class Command(BaseCommand):
    # The keys are checked below with one clear line; the full system check would print a report.
    requires_system_checks: list[str] = []
    help = (
        "Show how many token sets there are by status and by vault key (never a token). With --verify, "
        "decrypt every stored value and count the ones that fail; exits non-zero if any does."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--verify",
            action="store_true",
            help="Decrypt every stored value (nothing is printed but counts).",
        )

    def handle(self, *args, verify: bool = False, **options) -> None:
        keyring = keyring_or_fail()
        total = TokenSet.objects.count()
        pending = TokenSet.objects.filter(identity__isnull=True).count()
        self.stdout.write(f"Token sets: {total} ({total - pending} linked, {pending} awaiting revocation)")
        by_status = dict(TokenSet.objects.values_list("status").annotate(n=Count("id")).order_by("status"))
        for status in TokenSet.Status:
            self.stdout.write(f"  status {status.value}: {by_status.get(status.value, 0)}")
        by_key = dict(
            TokenSet.objects.exclude(key_name="")
            .values_list("key_name")
            .annotate(n=Count("id"))
            .order_by("key_name")
        )
        for name in keyring.names:
            role = " (encrypts new values)" if name == keyring.primary else ""
            self.stdout.write(f"  key {name}{role}: {by_key.get(name, 0)}")
        unknown = sorted(set(by_key) - set(keyring.names))
        for name in unknown:
            self.stdout.write(f"  key {name} (NOT in VAULT_KEYS): {by_key[name]}")
        if verify:
            report = verify_all(keyring)
            failed = sum(report.failures.values())
            self.stdout.write(f"Verified {report.checked} token set(s): {report.ok} ok, {failed} failed")
            for reason, count in sorted(report.failures.items()):
                self.stdout.write(f"  failed ({reason}): {count}")
            if failed:
                raise CommandError(f"{failed} token set(s) failed to decrypt; see the counts above.")
