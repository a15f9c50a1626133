"""Key rotation and integrity checks over every stored value (behind the staff commands).

Rotation re-encrypts token sets whose values are not under the first ``VAULT_KEYS`` key, one batch
per transaction, so it can be interrupted at any point and run again: it picks up the rows still
under an old key. Plaintext exists only inside ``_reencrypt`` for one row at a time.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Count
from django.views.decorators.debug import sensitive_variables

from . import errors
from .keys import KeyRing, get_keyring
from .models import TokenSet

logger = logging.getLogger(__name__)


@dataclass
class RotationReport:
    primary: str
    pending: int = 0
    reencrypted: int = 0
    failed: int = 0
    batches: int = 0
    failed_ids: list[int] = field(default_factory=list)


def _lock(queryset):
    from .tokens import _lock as lock

    return lock(queryset)


def pending_rotation(keyring: KeyRing | None = None):
    keyring = keyring or get_keyring()
    return TokenSet.objects.exclude(key_name=keyring.primary).exclude(key_name="")


@sensitive_variables()
def _reencrypt(token_set: TokenSet, keyring: KeyRing) -> None:
    access = token_set.read_access_token(keyring=keyring)
    refresh = token_set.read_refresh_token(keyring=keyring)
    if not access:
        raise errors.DecryptionFailed()
    token_set.set_tokens(access_token=access, refresh_token=refresh or None, keyring=keyring)
    token_set.save(
        update_fields=["access_token_encrypted", "refresh_token_encrypted", "key_name", "updated_at"]
    )


def rotate_batch(*, keyring: KeyRing, batch_size: int, after_pk: int = 0) -> tuple[int, int, list[int], int]:
    """Re-encrypt up to ``batch_size`` rows past ``after_pk`` in one transaction.

    Returns (picked, done, failed ids, last id picked). Walking the primary key from where the last
    batch stopped keeps every batch an index range scan: starting from the front each time would
    step over every row rotated so far, which makes a whole rotation quadratic in the row count.
    """
    done, failed = 0, []
    with transaction.atomic():
        ids = list(
            pending_rotation(keyring)
            .filter(pk__gt=after_pk)
            .order_by("pk")
            .values_list("pk", flat=True)[:batch_size]
        )
        for token_set in _lock(TokenSet.objects.filter(pk__in=ids)).order_by("pk"):
            if token_set.key_name == keyring.primary:
                continue  # rotated meanwhile (e.g. refreshed)
            try:
                _reencrypt(token_set, keyring)
            except errors.VaultUnavailable as error:
                logger.error(
                    "Token set %s could not be re-encrypted (%s)", token_set.pk, type(error).__name__
                )
                failed.append(token_set.pk)
            else:
                done += 1
    return len(ids), done, failed, (ids[-1] if ids else after_pk)


def rotate_keys(
    *, batch_size: int = 100, dry_run: bool = False, progress: Callable[[str], None] | None = None
) -> RotationReport:
    """Re-encrypt everything not under the first key, batch by batch (resumable)."""
    keyring = get_keyring()
    report = RotationReport(primary=keyring.primary, pending=pending_rotation(keyring).count())
    if dry_run or not report.pending:
        return report
    last = 0
    while True:
        picked, done, failed, last = rotate_batch(keyring=keyring, batch_size=batch_size, after_pk=last)
        if not picked:
            break
        report.batches += 1
        report.reencrypted += done
        report.failed += len(failed)
        report.failed_ids.extend(failed)
        if progress:
            progress(
                f"batch {report.batches}: re-encrypted {done}, failed {len(failed)} "
                f"({report.reencrypted + report.failed} of {report.pending})"
            )
    return report


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
    from .revocation import waiting_for_key

    counted = dict(TokenSet.objects.values_list("status").annotate(n=Count("id")).order_by("status"))
    return StatusReport(
        total=TokenSet.objects.count(),
        awaiting_revocation=TokenSet.objects.filter(identity__isnull=True).count(),
        by_status={status.value: counted.get(status.value, 0) for status in TokenSet.Status},
        by_key=dict(
            TokenSet.objects.exclude(key_name="")
            .values_list("key_name")
            .annotate(n=Count("id"))
            .order_by("key_name")
        ),
        primary=keyring.primary,
        configured_keys=list(keyring.names),
        revocation_waiting_for_key=waiting_for_key().count(),
    )


class KeyStillNeeded(Exception):
    """A key cannot be retired yet; ``str()`` says what to do first."""


def check_retirable(name: str, keyring: KeyRing) -> None:
    """Raise ``KeyStillNeeded`` unless no stored value uses ``name`` and it does not encrypt new ones."""
    if name == keyring.primary:
        raise KeyStillNeeded(
            f"{name} is the first key in VAULT_KEYS (it encrypts new values); put the new key "
            "first and run vault_rotate_keys before retiring it."
        )
    in_use = TokenSet.objects.filter(key_name=name).count()
    if in_use:
        raise KeyStillNeeded(f"Key {name} still encrypts {in_use} token set(s): run vault_rotate_keys first.")
