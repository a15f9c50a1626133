"""Issue 13 (vault): rooms of one concern, a token response parsed in one place, ``TokenSet``
filters and transitions named once. (Small rooms, site-wide: ``test_layout``; no import cycles:
``test_layout_imports``.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vault.models import TokenSet
from vault.responses import MAX_ACCESS_TOKEN_LENGTH, parse_token_response

VAULT = Path(__file__).resolve().parent.parent / "vault"
RECEIVED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_a_token_response_is_read_with_absolute_expiry_and_reported_scopes():
    parsed = parse_token_response(
        {
            "access_token": "at-1",
            "refresh_token": "rt-1",
            "id_token": "id-1",
            "token_type": "bearer",
            "expires_in": "3599",
            "scope": "repo,read:user",
        },
        received_at=RECEIVED,
    )
    assert (parsed.access_token, parsed.refresh_token, parsed.id_token) == ("at-1", "rt-1", "id-1")
    assert parsed.token_type == "bearer" and parsed.plausible
    assert (parsed.expires_in, parsed.expiry_assumed) == (3599, False)
    assert parsed.expires_at == RECEIVED + timedelta(seconds=3599)
    assert parsed.scopes == ["repo", "read:user"]
    assert "at-1" not in repr(parsed) and "rt-1" not in repr(parsed) and "id-1" not in repr(parsed)


@pytest.mark.parametrize("expires_in", [None, "soon", -5, True, 10**12])
def test_a_missing_or_impossible_expires_in_gets_the_assumed_lifetime(settings, expires_in):
    settings.VAULT_ASSUMED_TOKEN_LIFETIME = 1800
    parsed = parse_token_response({"access_token": "at", "expires_in": expires_in}, received_at=RECEIVED)
    assert (parsed.expires_in, parsed.expiry_assumed) == (None, True)
    assert parsed.expires_at == RECEIVED + timedelta(seconds=1800)


@pytest.mark.parametrize("value", ["", None, 12345, " ", "é", "x" * (MAX_ACCESS_TOKEN_LENGTH + 1)])
def test_an_unusable_access_token_is_never_plausible(value):
    parsed = parse_token_response({"access_token": value, "refresh_token": ""})
    assert not parsed.plausible and parsed.refresh_token is None and parsed.token_type == ""


@pytest.mark.django_db
def test_detached_sets_are_found_by_the_named_filters():
    now = datetime.now(tz=UTC)
    response = parse_token_response({"access_token": "at-detached"})
    due = TokenSet.create_detached(owner_id=1, provider="github", uid="1", response=response)
    paused = TokenSet.create_detached(owner_id=1, provider="github", uid="2", response=response)
    TokenSet.objects.filter(pk=paused.pk).update(
        retry_not_before=now + timedelta(minutes=5), last_error_code="decryption_failed"
    )
    # Detached tokens keep only an expiry the provider stated: a guessed one could skip the revocation.
    assert due.expires_at is None and due.status == TokenSet.Status.REVOKE_PENDING
    assert due.read_access_token() == "at-detached"
    assert set(TokenSet.objects.waiting_for_revocation()) == {due, paused}
    assert list(TokenSet.objects.due_for_revocation(now)) == [due]
    assert list(TokenSet.objects.waiting_for_key()) == [paused]
    assert not TokenSet.objects.linked().exists()
