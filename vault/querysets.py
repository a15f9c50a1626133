"""The filters that recur on token sets, named once: ``TokenSet.objects.waiting_for_revocation()``
and the like, so the rule each one states is written in one place (issue 13: no custom QuerySets,
"waiting for revocation" spelled out in five places). Its own module so ``models`` stays the rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import models
from django.db.models import Q

from accounts.models import live_profile_filter

#: Codes that say *this site* cannot read its own tokens (a wrong or missing vault key), not that
#: the provider failed: a revocation that hit one waits for the right key (issue 20.4).
KEY_FAULT_CODES = frozenset({"decryption_failed", "vault_key_missing"})


class TokenSetQuerySet(models.QuerySet):
    """The filters that recur on token sets, named once (callers never spell them out)."""

    def linked(self) -> TokenSetQuerySet:
        return self.filter(identity__isnull=False)

    def waiting_for_revocation(self) -> TokenSetQuerySet:
        """Detached token sets: their identity is gone and their tokens wait to be revoked."""
        return self.filter(identity__isnull=True)

    def due_for_revocation(self, now: datetime) -> TokenSetQuerySet:
        """Waiting for revocation, and no pause after a failed attempt still runs."""
        return self.waiting_for_revocation().filter(
            Q(retry_not_before__isnull=True) | Q(retry_not_before__lte=now)
        )

    def waiting_for_key(self) -> TokenSetQuerySet:
        """Waiting for revocation, stopped because the tokens do not decrypt with ``VAULT_KEYS``."""
        return self.waiting_for_revocation().filter(last_error_code__in=KEY_FAULT_CODES)

    def due_for_refresh(self, horizon: datetime) -> TokenSetQuerySet:
        """Linked, active, renewable, expiring before ``horizon``, and on an active profile (a
        merged-away or deactivated profile's tokens are not kept alive: issue 20.3)."""
        return (
            self.linked()
            .filter(status=self.model.Status.ACTIVE, expires_at__lte=horizon)
            .exclude(refresh_token_encrypted="")
            .filter(live_profile_filter("identity__user"))
        )

    def under_lease(self, pk: int, lease: str) -> TokenSetQuerySet:
        """The row ``pk`` while ``lease`` still holds it: once a lapsed lease is taken by another
        worker, the first holder's writes match nothing."""
        return self.filter(pk=pk, lease_id=lease)

    def release_lease(self, **changes: Any) -> int:
        """Give the lease back, writing ``changes`` in the same update."""
        return self.update(lease_id="", lease_expires_at=None, **changes)

    def encrypted(self) -> TokenSetQuerySet:
        """Token sets holding values (under the key ``key_name`` names)."""
        return self.exclude(key_name="")

    def not_under_key(self, name: str) -> TokenSetQuerySet:
        """Token sets with values stored under another key than ``name`` (key rotation)."""
        return self.encrypted().exclude(key_name=name)
