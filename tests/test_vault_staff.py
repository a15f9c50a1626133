"""Staff: the admin (read-only, no secrets, force refresh, revoke) and the three commands."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command, get_commands, load_command_class
from django.core.management.base import CommandError
from django.test import override_settings
from social_django.models import UserSocialAuth

import vault
from activity.models import Activity
from sandbox import state
from sandbox.state import token_is_active
from vault import provider_calls, rotation
from vault.activity_kinds import VaultKind
from vault.models import TokenSet

from .flows import round_trip
from .vault_support import expire, stored_tokens

pytestmark = pytest.mark.django_db

TEST_2, TEST_1 = "test-2", "test-1"


@pytest.fixture(autouse=True)
def _no_retry_pause(monkeypatch):
    monkeypatch.setattr(provider_calls, "RETRY_BACKOFF", (0.0, 0.0))


def _run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=out)
    return out.getvalue()


def _keys(settings, *names) -> str:
    entries = dict(entry.split(":", 1) for entry in settings.VAULT_KEYS.split(","))
    return ",".join(f"{name}:{entries[name]}" for name in names)


# --- admin -------------------------------------------------------------------------------------------


def test_admin_shows_status_and_key_but_no_token_or_ciphertext(client, staff):
    secrets = []
    for token_set in TokenSet.objects.all():
        secrets += [
            *stored_tokens(token_set),
            token_set.access_token_encrypted,
            token_set.refresh_token_encrypted,
        ]
    listing = client.get("/admin/vault/tokenset/")
    assert listing.status_code == 200
    text = listing.content.decode()
    assert "Active" in text and TEST_2 in text
    for token_set in TokenSet.objects.all():
        detail = client.get(f"/admin/vault/tokenset/{token_set.pk}/change/")
        assert detail.status_code == 200
        text += detail.content.decode()
        assert 'name="_save"' not in detail.content.decode()
    for secret in secrets:
        assert secret not in text
    assert "v1.test-2." not in text
    assert client.get("/admin/vault/tokenset/add/").status_code == 403


def test_admin_force_refresh_and_revoke_actions(client, staff, django_capture_on_commit_callbacks):
    github = TokenSet.objects.get(provider="github")
    old_access, _ = stored_tokens(github)
    response = client.post(
        "/admin/vault/tokenset/", {"action": "force_refresh", "_selected_action": [github.pk]}
    )
    assert response.status_code == 302
    github.refresh_from_db()
    assert stored_tokens(github)[0] != old_access and github.refreshed_at is not None
    assert state.refresh_count("github") == 1
    refreshed = Activity.objects.get(kind=VaultKind.TOKEN_REFRESHED)
    assert refreshed.actor == staff and refreshed.user == staff

    access, refresh = stored_tokens(github)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/admin/vault/tokenset/", {"action": "revoke", "_selected_action": [github.pk]})
    assert not token_is_active("github", access) and not token_is_active("github", refresh)
    assert not TokenSet.objects.filter(pk=github.pk).exists()
    assert UserSocialAuth.objects.filter(provider="github").exists()  # still linked, without tokens
    page = client.get("/settings/connections/").content.decode()
    assert 'data-token-status="missing"' in page


# --- commands ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["vault_status", "vault_refresh", "vault_rotate_keys"])
def test_every_command_has_help(name):
    command = load_command_class(get_commands()[name], name)
    text = command.create_parser("manage.py", name).format_help()
    assert "--help" in text and len(command.help) > 40


def test_vault_status_counts_by_status_and_key(staff, settings):
    TokenSet.objects.filter(provider="github").update(status=TokenSet.Status.RECONNECT_REQUIRED)
    out = _run("vault_status")
    assert "Stored tokens: 2 account(s) (2 linked, 0 removed, awaiting revocation)" in out
    assert "  active: 1" in out and "  reconnect required: 1" in out
    assert f"key {TEST_2} (encrypts new values): 2" in out and f"key {TEST_1}: 0" in out
    out = _run("vault_status", "--verify")
    assert "Verified the stored tokens of 2 account(s): 2 ok, 0 failed" in out
    with (
        override_settings(VAULT_KEYS=_keys(settings, TEST_1)),
        pytest.raises(CommandError, match="Tokens of 2 account"),
    ):
        call_command("vault_status", "--verify", stdout=io.StringIO())


def test_vault_refresh_refreshes_what_expires_soon(staff):
    github = TokenSet.objects.get(provider="github")
    expire(github)
    before = stored_tokens(github)
    out = _run("vault_refresh", "--dry-run")
    assert "the tokens of 1 account(s) would be refreshed" in out and stored_tokens(github) == before
    out = _run("vault_refresh", "--within", "60")
    assert "Refresh: 1 due, 1 refreshed" in out
    assert stored_tokens(github)[0] != before[0]
    out = _run("vault_refresh", "--within", "7200")  # the sandbox issues one-hour tokens
    # Both are due, but a fresh one-hour token cannot last two: neither is refreshed again moments
    # after it was issued (issue 12.3).
    assert "Refresh: 2 due, 0 refreshed, 2 already fresh" in out


def test_commands_refuse_bad_input_with_one_line(staff):
    for args, message in [
        (("vault_refresh", "--within", "-5"), "--within must be between"),
        (("vault_rotate_keys", "--batch-size", "0"), "--batch-size must be between"),
        (("vault_rotate_keys", "--retire", TEST_2), "first key in VAULT_KEYS"),
    ]:
        with pytest.raises(CommandError) as caught:
            call_command(*args, stdout=io.StringIO())
        assert message in str(caught.value) and "\n" not in str(caught.value)


def test_key_rotation_end_to_end_interrupted_and_resumed(client, staff, settings, monkeypatch):
    # Five token sets written while test-1 was the first key.
    with override_settings(VAULT_KEYS=_keys(settings, TEST_1, TEST_2)):
        for number in range(3):
            round_trip(client, "github", email=f"alice-{number}@example.com")
        for token_set in TokenSet.objects.all():
            token_set.set_tokens(
                access_token=stored_tokens(token_set)[0], refresh_token=stored_tokens(token_set)[1]
            )
            token_set.save()
    expected = {token_set.pk: stored_tokens(token_set) for token_set in TokenSet.objects.all()}
    assert set(TokenSet.objects.values_list("key_name", flat=True)) == {TEST_1}
    assert len(expected) == 5

    # test-2 goes first: new writes use it, test-1 still reads.
    assert "Dry run: the tokens of 5 account(s) would be re-encrypted under test-2 in 3 batch(es)." in _run(
        "vault_rotate_keys", "--dry-run", "--batch-size", "2"
    )
    assert TokenSet.objects.filter(key_name=TEST_1).count() == 5

    original = rotation.rotate_batch
    calls = {"n": 0}

    def crash_after_first_batch(**kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("host went away")
        return original(**kwargs)

    monkeypatch.setattr(rotation, "rotate_batch", crash_after_first_batch)
    out = io.StringIO()
    with pytest.raises(RuntimeError):
        call_command("vault_rotate_keys", "--batch-size", "2", stdout=out)
    assert "batch" not in out.getvalue()  # no line per batch without a terminal (issue 14.6)
    assert TokenSet.objects.filter(key_name=TEST_2).count() == 2
    # Half-way, everything still reads, and the old key cannot be retired yet.
    for token_set in TokenSet.objects.all():
        assert stored_tokens(token_set) == expected[token_set.pk]
    with pytest.raises(CommandError, match=f"Key {TEST_1} still encrypts the tokens of 3 account"):
        call_command("vault_rotate_keys", "--retire", TEST_1, stdout=io.StringIO())

    monkeypatch.setattr(rotation, "rotate_batch", original)
    out = _run("vault_rotate_keys", "--batch-size", "2")
    assert "Re-encrypted the tokens of 3 account(s) under test-2 in 2 batch(es); 0 failed." in out
    assert "Nothing to do" in _run("vault_rotate_keys")
    assert "can be removed from VAULT_KEYS" in _run("vault_rotate_keys", "--retire", TEST_1)

    with override_settings(VAULT_KEYS=_keys(settings, TEST_2)):
        call_command("check")
        for token_set in TokenSet.objects.all():
            assert stored_tokens(token_set) == expected[token_set.pk]
            assert token_set.access_token_encrypted.startswith("v1.test-2.")
        assert "5 ok, 0 failed" in _run("vault_status", "--verify")
        token = vault.get_access_token(staff, "google-oauth2")
        assert token.access_token == expected[TokenSet.objects.get(provider="google-oauth2").pk][0]
