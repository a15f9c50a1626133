"""Issue 20.4: a wrong vault key never erases identities waiting for revocation; probes prove the keys.

With another environment's key under the right name the site used to start, ``/readyz`` said 200,
``check --deploy`` was clean, and each revocation attempt failed with ``decryption_failed`` until,
after 10 of them, the rows were deleted: the grants stayed valid at the provider for good.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core import checks
from django.core.management import call_command
from django.test import Client, override_settings
from social_django.models import UserSocialAuth

from accounts.models import User
from sandbox.state import token_is_active
from vault import revocation
from vault.models import TokenSet

from .flows import round_trip, sign_in
from .vault_support import let_pause_pass, stored_tokens

pytestmark = pytest.mark.django_db

OTHER_BYTES = base64.b64encode(b"another-environment-key-32-bytes").decode()


def _wrong_primary_key() -> str:
    """The same key names, but ``test-2`` (which encrypted everything) holds other bytes."""
    entries = dict(entry.split(":", 1) for entry in django_settings.VAULT_KEYS.split(","))
    return f"test-2:{OTHER_BYTES},test-1:{entries['test-1']}"


@pytest.fixture
def alice(client) -> User:
    sign_in(client, "github", email="alice@example.com")
    round_trip(client, "google-oauth2", email="alice@example.com")
    return User.objects.get()


def test_a_wrong_key_never_gives_up_a_revocation_and_it_completes_once_the_key_is_right(
    alice, client, capsys, django_capture_on_commit_callbacks
):
    github = UserSocialAuth.objects.get(provider="github")
    token_set = TokenSet.objects.get(identity=github)
    access, refresh = stored_tokens(token_set)
    staff = User.objects.create_superuser("root", "root@example.com", "pw-for-tests-only-123")
    admin = Client()
    admin.force_login(staff)

    with override_settings(VAULT_KEYS=_wrong_primary_key()):
        with django_capture_on_commit_callbacks(execute=True):
            client.post(f"/settings/connections/{github.pk}/disconnect/")
        assert not UserSocialAuth.objects.filter(pk=github.pk).exists()
        for _ in range(revocation.MAX_ATTEMPTS * 2):
            let_pause_pass(token_set)
            call_command("vault_refresh")
        capsys.readouterr()

        pending = TokenSet.objects.get(pk=token_set.pk)  # still here, never given up
        assert pending.status == TokenSet.Status.REVOKE_PENDING
        assert pending.revoke_attempts == 0 and pending.last_error_code == "decryption_failed"
        call_command("vault_status")
        out = capsys.readouterr().out
        assert "waiting for the right vault key (tokens do not decrypt): 1" in out
        page = admin.get("/admin/vault/tokenset/").content.decode()
        assert "wait for revocation because their tokens do not decrypt with VAULT_KEYS" in page
        assert token_is_active("github", access)

    # The right key is back: the next run revokes at the provider and erases the row.
    let_pause_pass(token_set)
    call_command("vault_refresh")
    assert not TokenSet.objects.filter(pk=token_set.pk).exists()
    assert not token_is_active("github", access) and not token_is_active("github", refresh)


def test_readyz_and_check_deploy_prove_the_keys_decrypt_what_the_database_holds(alice, client):
    assert client.get("/readyz").status_code == 200
    assert not [m for m in checks.run_checks(include_deployment_checks=True) if m.id == "vault.E003"]

    wrong = _wrong_primary_key()
    with override_settings(VAULT_KEYS=wrong):
        response = client.get("/readyz")
        assert response.status_code == 503
        problems = response.json()["problems"]
        assert problems == [
            "vault keys: stored tokens do not decrypt with the configured key(s): test-2 "
            "(a wrong key under the right name?)"
        ]
        found = [m for m in checks.run_checks(include_deployment_checks=True) if m.id == "vault.E003"]
        assert len(found) == 1 and "test-2" in found[0].msg
        assert OTHER_BYTES not in response.content.decode() + found[0].msg + str(found[0].hint)
        call_command("check")  # a plain check does not read the database; --deploy does


def test_revocation_back_off_in_the_code_and_the_docs_agree():
    total = revocation.give_up_after_seconds()
    assert total == sum(60 * 2**n for n in range(revocation.MAX_ATTEMPTS - 1)) == 30660
    docs = (Path(__file__).resolve().parent.parent / "docs" / "deploy.md").read_text()
    assert f"{total:,} s, about {total / 3600:.1f} hours" in docs
    assert "about four days" not in Path(revocation.__file__).read_text()
    assert f"{total:,} s (about {total / 3600:.1f} hours)" in Path(revocation.__file__).read_text()
