"""What ``vault_status`` reports: token sets counted by status and by key, and (``--verify``)
every stored value decrypted and dropped, counting what fails. Counts only, never a value.

Apart from ``vault.rotation`` (which changes rows) because this only reads; the connections page's
per-identity status is ``vault.status``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from django.db.models import Count
from django.views.decorators.debug import sensitive_variables

from . import errors
from .keys import KeyRing, get_keyring
from .models import TokenSet


@dataclass
class VerifyReport:
    checked: int = 0
    ok: int = 0
    failures: Counter = field(default_factory=Counter)


@sensitive_variables()
def verify_all(keyring: KeyRing | None = None) -> VerifyReport:
    """Decrypt every stored value (discarding it) and count what fails, by reason."""
    keyring = keyring or get_keyring()
    report = VerifyReport()
    for token_set in TokenSet.objects.order_by("pk").iterator(chunk_size=500):
        report.checked += 1
        try:
            token_set.read_access_token(keyring=keyring)
            token_set.read_refresh_token(keyring=keyring)
        except errors.VaultKeyError:
            report.failures["key not in VAULT_KEYS"] += 1
        except errors.DecryptionFailed:
            report.failures["does not verify"] += 1
        else:
            report.ok += 1
    return report


@dataclass
class StatusReport:
    """What ``vault_status`` prints: counts only, never a value."""

    total: int
    awaiting_revocation: int
    by_status: dict[str, int]
    by_key: dict[str, int]
    primary: str
    configured_keys: list[str]
    #: Removed accounts whose revocation waits because their tokens do not decrypt (issue 20.4).
    revocation_waiting_for_key: int = 0

    @property
    def unknown_keys(self) -> list[str]:
        """Key names stored values name that ``VAULT_KEYS`` does not hold (they cannot be read)."""
        return sorted(set(self.by_key) - set(self.configured_keys))


def status_report(keyring: KeyRing) -> StatusReport:
    counted = dict(TokenSet.objects.values_list("status").annotate(n=Count("id")).order_by("status"))
    return StatusReport(
        total=TokenSet.objects.count(),
        awaiting_revocation=TokenSet.objects.waiting_for_revocation().count(),
        by_status={status.value: counted.get(status.value, 0) for status in TokenSet.Status},
        by_key=dict(
            TokenSet.objects.encrypted().values_list("key_name").annotate(n=Count("id")).order_by("key_name")
        ),
        primary=keyring.primary,
        configured_keys=list(keyring.names),
        revocation_waiting_for_key=TokenSet.objects.waiting_for_key().count(),
    )
