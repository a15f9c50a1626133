"""Key rotation and integrity checks over every stored value (behind the staff commands).

Rotation re-encrypts token sets whose values are not under the first ``VAULT_KEYS`` key, one batch
per transaction, so it can be interrupted at any point and run again: it picks up the rows still
under an old key. Plaintext exists only inside ``_reencrypt`` for one row at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import transaction
from django.views.decorators.debug import sensitive_variables

from . import errors
from .keys import KeyRing, get_keyring
from .locking import lock_rows
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


def pending_rotation(keyring: KeyRing | None = None):
    keyring = keyring or get_keyring()
    return TokenSet.objects.not_under_key(keyring.primary)


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
        for token_set in lock_rows(TokenSet.objects.filter(pk__in=ids)).order_by("pk"):
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
    *, batch_size: int = 100, dry_run: bool = False, progress: Callable[[int, int], None] | None = None
) -> RotationReport:
    """Re-encrypt everything not under the first key, batch by batch (resumable).

    ``progress(done, total)`` after each batch: the command draws one line on a terminal."""
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
            progress(report.reencrypted + report.failed, report.pending)
    return report


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
        raise KeyStillNeeded(
            f"Key {name} still encrypts the tokens of {in_use} account(s): run vault_rotate_keys first."
        )
