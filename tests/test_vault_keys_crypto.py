"""Keys and encryption: fail closed on bad keys, AES-GCM bound to row/field/owner, copies refused."""

from __future__ import annotations

import base64
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError
from django.db import connection
from django.test import Client, override_settings

import vault
from accounts.models import User
from vault import crypto, errors
from vault.key_checks import readiness_problem
from vault.keys import KeyRing, parse_keys
from vault.models import TokenSet

from .flows import round_trip, sign_in
from .vault_support import stored_tokens

pytestmark = pytest.mark.django_db

KEY_A = base64.b64encode(b"A" * 32).decode()
KEY_B = base64.urlsafe_b64encode(b"\xfb" * 32).decode().rstrip("=")


# --- VAULT_KEYS ------------------------------------------------------------------------------------


def test_keys_parse_names_first_key_as_primary_and_accept_urlsafe_base64():
    ring = parse_keys(f"new:{KEY_B}, old:{KEY_A}")
    assert ring.primary == "new"
    assert ring.names == ("new", "old")
    assert ring.key("old") == b"A" * 32
    assert KEY_A not in repr(ring) and "AAAA" not in str(ring)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", "VAULT_KEYS is not set"),
        ("   ", "VAULT_KEYS is not set"),
        (KEY_A, "not in the form name:base64-key"),
        (f"k1:{KEY_A},", "entry 2 is empty"),
        (f"bad.name:{KEY_A}", "invalid name"),
        ("k1:not*base64*at*all", "is not valid base64"),
        (f"k1:{base64.b64encode(b'x' * 16).decode()}", "decodes to 16 bytes"),
        (f"k1:{KEY_A},k1:{KEY_B}", "lists the key name 'k1' twice"),
    ],
)
def test_bad_keys_fail_with_one_line_that_never_shows_key_material(raw, expected):
    with pytest.raises(errors.VaultKeyError) as caught:
        parse_keys(raw)
    message = caught.value.message
    assert expected in message
    assert "\n" not in message
    for secret in (KEY_A, KEY_B, "not*base64*at*all", base64.b64encode(b"x" * 16).decode()):
        assert secret not in message


def test_missing_keys_make_readyz_fail_and_check_report_it(client):
    assert client.get("/readyz").status_code == 200
    with override_settings(VAULT_KEYS=""):
        response = client.get("/readyz")
        assert response.status_code == 503
        assert any("VAULT_KEYS is not set" in problem for problem in response.json()["problems"])
        assert readiness_problem().startswith("vault keys: ")
        with pytest.raises(SystemCheckError, match=r"vault\.E001"):
            call_command("check")
    with override_settings(VAULT_KEYS=f"k1:{KEY_A[:-8]}"):
        response = client.get("/readyz")
        assert response.status_code == 503
        assert KEY_A[:-8] not in response.content.decode()


def test_check_reports_values_under_a_key_that_left_vault_keys(client, settings):
    sign_in(client, "github", email="alice@example.com")
    assert TokenSet.objects.get().key_name == "test-2"
    call_command("check")  # fine as configured
    only_test_1 = settings.VAULT_KEYS.split(",")[1]
    with override_settings(VAULT_KEYS=only_test_1), pytest.raises(SystemCheckError) as caught:
        call_command("check")
    assert "vault.E002" in str(caught.value) and "test-2" in str(caught.value)


def test_vault_operations_fail_closed_without_keys(client):
    sign_in(client, "github", email="alice@example.com")
    user = User.objects.get()
    with override_settings(VAULT_KEYS=""):
        with pytest.raises(vault.VaultUnavailable) as caught:
            vault.get_access_token(user, "github")
        assert caught.value.code == "vault_unavailable" and caught.value.status == 503
        with pytest.raises(CommandError, match="VAULT_KEYS is not set"):
            call_command("vault_status")


def test_linking_with_missing_keys_is_refused_and_stores_nothing(client):
    sign_in(client, "github", email="alice@example.com")
    with override_settings(VAULT_KEYS=""):
        result = round_trip(client, "google-oauth2", email="alice@example.com")
    assert result.response.status_code == 302
    user = User.objects.get()
    assert list(user.social_auth.values_list("provider", flat=True)) == ["github"]
    assert TokenSet.objects.count() == 1
    page = client.get("/settings/connections/").content.decode()
    assert "vault unavailable" in page


# --- encryption ----------------------------------------------------------------------------------------


def _binding(**changes) -> crypto.Binding:
    values = {"row_id": 7, "field": "access_token", "owner_id": 3, "provider": "github", "uid": "1234"}
    values.update(changes)
    return crypto.Binding(**values)


def test_values_name_their_key_use_fresh_nonces_and_round_trip():
    ring = parse_keys(f"k2:{KEY_B},k1:{KEY_A}")
    first = crypto.encrypt("gho_secret", binding=_binding(), keyring=ring)
    second = crypto.encrypt("gho_secret", binding=_binding(), keyring=ring)
    assert first.startswith("v1.k2.") and second.startswith("v1.k2.")
    assert first != second
    assert first.split(".")[2] != second.split(".")[2]
    assert len(base64.urlsafe_b64decode(first.split(".")[2] + "==")) == 12
    assert "gho_secret" not in first
    assert crypto.decrypt(first, binding=_binding(), keyring=ring) == "gho_secret"
    # An older key still reads what it wrote.
    old = crypto.encrypt("older", binding=_binding(), keyring=parse_keys(f"k1:{KEY_A}"))
    assert crypto.decrypt(old, binding=_binding(), keyring=ring) == "older"


@pytest.mark.parametrize(
    "change",
    [
        {"row_id": 8},
        {"field": "refresh_token"},
        {"owner_id": 4},
        {"provider": "google-oauth2"},
        {"uid": "999"},
    ],
)
def test_a_value_only_decrypts_where_it_was_written(change):
    ring = parse_keys(f"k1:{KEY_A}")
    stored = crypto.encrypt("gho_secret", binding=_binding(), keyring=ring)
    with pytest.raises(errors.DecryptionFailed):
        crypto.decrypt(stored, binding=_binding(**change), keyring=ring)


def test_tampered_or_unknown_key_values_raise_instead_of_returning_garbage():
    ring = parse_keys(f"k1:{KEY_A}")
    stored = crypto.encrypt("gho_secret", binding=_binding(), keyring=ring)
    version, name, nonce, sealed = stored.split(".")
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    for bad in (f"{version}.{name}.{nonce}.{flipped}", "plaintext", f"v1.k1.{nonce}", ""):
        with pytest.raises(errors.DecryptionFailed):
            crypto.decrypt(bad, binding=_binding(), keyring=ring)
    with pytest.raises(errors.VaultKeyError, match="'gone'"):
        crypto.decrypt(f"v1.gone.{nonce}.{sealed}", binding=_binding(), keyring=ring)
    assert isinstance(ring, KeyRing)


def test_ciphertext_copied_to_another_row_with_sql_fails_and_is_never_returned(client):
    sign_in(client, "github", email="alice@example.com")
    alice = User.objects.get()
    sign_in(Client(), "github", email="bob@example.com")
    bob = User.objects.exclude(pk=alice.pk).get()
    alice_set = TokenSet.objects.get(identity__user=alice)
    bob_set = TokenSet.objects.get(identity__user=bob)
    bob_access, _ = stored_tokens(bob_set)

    table = TokenSet._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET access_token_encrypted = (SELECT access_token_encrypted FROM {table} "
            "WHERE id = %s) WHERE id = %s",
            [bob_set.pk, alice_set.pk],
        )

    with pytest.raises(vault.VaultUnavailable) as caught:
        vault.get_access_token(alice, "github")
    assert bob_access not in repr(caught.value) and bob_access not in caught.value.message
    assert caught.value.authorize_url.endswith("/settings/connections/?connect=github")
    assert vault.get_access_token(bob, "github").access_token == bob_access  # the original still works

    with pytest.raises(CommandError, match="Tokens of 1 account"):
        call_command("vault_status", "--verify", stdout=io.StringIO())


def test_refresh_token_moved_into_the_access_field_fails_too(client):
    sign_in(client, "github", email="alice@example.com")
    alice = User.objects.get()
    token_set = TokenSet.objects.get()
    TokenSet.objects.filter(pk=token_set.pk).update(access_token_encrypted=token_set.refresh_token_encrypted)
    with pytest.raises(errors.DecryptionFailed):
        vault.get_access_token(alice, "github")
