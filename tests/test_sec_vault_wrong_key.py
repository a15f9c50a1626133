"""A vault key replaced by another environment's key under the same name (issues 12.5 and 20.4).

Every token set then fails to decrypt and is flagged ``vault_fault`` (fail fast, logged once). That
is the keys' fault, not the rows': once the right key is back, the same rows work again without
anyone reconnecting, and the flag clears itself.
"""

from __future__ import annotations

import base64
import json

import pytest
from django.test import Client

from accounts.models import User
from sandbox import state as sandbox_state
from vault import agents
from vault.models import TokenSet

from .flows import sign_in
from .vault_support import expire

pytestmark = pytest.mark.django_db


def _token(key: str, provider: str) -> tuple[int, dict]:
    response = Client().post(
        "/api/v1/token",
        json.dumps({"connection": provider}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    return response.status_code, response.json()


def _same_names_other_keys(raw: str) -> str:
    """VAULT_KEYS with every key name kept and every key's bytes replaced."""
    entries = []
    for position, entry in enumerate(raw.split(",")):
        name = entry.split(":", 1)[0]
        entries.append(f"{name}:{base64.b64encode(bytes([65 + position]) * 32).decode()}")
    return ",".join(entries)


@pytest.mark.parametrize(("provider", "sandbox_name"), [("github", "github"), ("google-oauth2", "google")])
def test_a_wrong_key_flags_rows_that_recover_by_themselves_once_the_key_is_right(
    settings, client, provider, sandbox_name
):
    sign_in(client, provider, email="alice@example.com")
    alice = User.objects.get()
    key = agents.create_agent_key(user=alice, name="bot", providers=[provider])[1]
    assert _token(key, provider)[0] == 200
    right_keys = settings.VAULT_KEYS

    settings.VAULT_KEYS = _same_names_other_keys(right_keys)
    for _ in range(2):
        status, body = _token(key, provider)
        assert (status, body["error"]) == (503, "vault_unavailable")
    token_set = TokenSet.objects.get(identity__isnull=False)
    assert token_set.status == TokenSet.Status.VAULT_FAULT and token_set.fault_keyring

    # The right key is back: the same row answers again, no reconnect, and the flag is gone.
    settings.VAULT_KEYS = right_keys
    status, body = _token(key, provider)
    assert status == 200, body
    token_set.refresh_from_db()
    assert token_set.status == TokenSet.Status.ACTIVE and token_set.fault_keyring == ""
    page = client.get("/settings/connections/").content.decode()
    assert 'data-token-status="vault_fault"' not in page

    # The same holds when the wrong key broke the refresh token: the refresh runs once keys are right.
    settings.VAULT_KEYS = _same_names_other_keys(right_keys)
    expire(token_set)
    assert _token(key, provider)[0] == 503
    assert TokenSet.objects.get(pk=token_set.pk).status == TokenSet.Status.VAULT_FAULT
    refreshes = sandbox_state.refresh_count(sandbox_name)
    settings.VAULT_KEYS = right_keys
    status, body = _token(key, provider)
    assert status == 200, body
    assert sandbox_state.refresh_count(sandbox_name) == refreshes + 1
    assert TokenSet.objects.get(pk=token_set.pk).status == TokenSet.Status.ACTIVE


def test_the_fingerprint_changes_with_the_keys_and_shows_none_of_them(settings):
    from vault.keys import parse_keys

    right = parse_keys(settings.VAULT_KEYS)
    wrong = parse_keys(_same_names_other_keys(settings.VAULT_KEYS))
    assert right.fingerprint != wrong.fingerprint and len(right.fingerprint) == 16
    for name in right.names:
        assert base64.b64encode(right.key(name)).decode() not in right.fingerprint
