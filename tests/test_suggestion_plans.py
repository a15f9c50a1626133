"""Suggested linking looks profiles up by verified email on every connections page (issue 17.3): the
lookup can use its partial index on both databases, so it stays a lookup at a million people."""

from __future__ import annotations

import pytest
from django.db import connection

from accounts.models import IdentityDetails

pytestmark = pytest.mark.django_db


def _plan(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Tiny test tables are cheaper to scan: ask whether the index can serve the lookup at all.
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(f"EXPLAIN {sql}", params)
        else:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        return "\n".join(str(row) for row in cursor.fetchall())


def test_the_verified_email_lookup_uses_its_index():
    lookup = IdentityDetails.objects.filter(email__in=["alice@example.com"], email_verified=True)
    assert "accounts_verified_email_idx" in _plan(lookup.values_list("identity_id", flat=True))
