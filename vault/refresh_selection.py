"""Which token sets ``vault_refresh`` renews, read so that the run stays flat at any size, and the
counts it reports (``vault.refresh.refresh_expiring`` does the renewing).

The selection walks the ``(status, expires_at)`` index soonest expiry first, one keyset page at a
time (never an ``OFFSET``, never a list of every due set in memory).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Model, QuerySet

from .models import TokenSet
from .provider_calls import RATE_LIMITED


@dataclass
class RefreshReport:
    """Counts for ``vault_refresh`` (never tokens)."""

    due: int = 0
    refreshed: int = 0
    already_fresh: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    #: Skipped, never sent to a provider: ``provider_unavailable`` / ``issuer_changed`` -> count.
    skipped: dict[str, int] = field(default_factory=dict)
    #: Not tried because the provider failed recently (``retry_not_before``), or rate-limited this
    #: run (``rate_limited``): last error code -> count.
    backed_off: dict[str, int] = field(default_factory=dict)
    #: Providers that answered 429 during the run: provider -> seconds their Retry-After asked for.
    #: Their other token sets were not tried in this run (counted in ``backed_off``).
    paused: dict[str, int] = field(default_factory=dict)


#: Token sets read per selection query: a run holds one page, whatever the number of sets due.
SELECTION_PAGE = 500


def due_token_sets(horizon: datetime) -> QuerySet[TokenSet]:
    """What ``vault_refresh`` walks: linked, active, renewable token sets on live profiles expiring
    before ``horizon``, soonest first, read through the ``(status, expires_at)`` index (its plan is
    checked by tests/test_refresh_at_size.py and captured by the benchmark)."""
    return (
        TokenSet.objects.due_for_refresh(horizon)
        .select_related("identity__user", "identity__details")
        .order_by("expires_at", "pk")
    )


def due_in_pages(horizon: datetime) -> Iterator[TokenSet]:
    """``due_token_sets`` one page at a time, each after the last ``(expires_at, pk)`` seen: no
    cursor stays open while the workers write, and memory is one page at any size."""
    after = None
    while True:
        page = due_token_sets(horizon)
        if after is not None:
            page = page.filter(expires_at__gte=after[0]).exclude(expires_at=after[0], pk__lte=after[1])
        rows = list(page[:SELECTION_PAGE])
        yield from rows
        if len(rows) < SELECTION_PAGE:
            return
        after = (rows[-1].expires_at, rows[-1].pk)
        _forget_relations(rows)


def _forget_relations(rows: list[TokenSet]) -> None:
    """Let a page go as soon as it is dropped. ``select_related`` caches both sides of a one-to-one
    (token set and identity, identity and details), so a page's rows point at each other and only
    the cycle collector would free them, every few pages: ``vault_refresh`` grew by ten pages' worth
    (about 12 MB) before levelling off. Every row has been handed on when this runs, and what was
    handed on (ids, the owner) does not need the caches."""
    pending: list[Model] = list(rows)
    while pending:
        cache = pending.pop()._state.fields_cache
        pending.extend(
            value for value in cache.values() if isinstance(value, Model) and value._state.fields_cache
        )
        cache.clear()


def was_rate_limited(token_set_id: int) -> bool:
    """Whether the refresh that just failed was answered 429 (``vault.outcomes`` kept its code)."""
    code = TokenSet.objects.filter(pk=token_set_id).values_list("last_error_code", flat=True).first()
    return code == RATE_LIMITED
