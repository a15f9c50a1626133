"""Issue 20 ("also seen"): plaintext tokens a stock social-auth install left in ``extra_data``.

Adopting this site over an existing social-auth database is a real path: its ``extra_data`` holds
access and refresh tokens in plaintext. ``vault_import_extra_data`` moves them into the vault
(encrypted, as a sign-in's capture does) and scrubs them, keeping the non-secret fields;
``check --deploy`` warns while any remain. A canary token must then appear nowhere.
"""

from __future__ import annotations

import json
import time

import pytest
from django.apps import apps
from django.core import checks, serializers
from django.core.management import call_command, load_command_class
from social_django.models import UserSocialAuth

import vault
from accounts.models import User
from vault.models import TokenSet

from .flows import sign_in

pytestmark = pytest.mark.django_db

CANARY_ACCESS = "ghu_CANARY0access0token0for0the0import0test"
CANARY_REFRESH = "ghr_CANARY0refresh0token0for0the0import0test"
CANARY_OTHER = "ya29.CANARY0on0a0merged0away0profile"
OIDC_CONTEXT = {"iss": "https://op.example.test", "sub": "sub-1", "auth_time": 1700000000}


def _stock_install() -> tuple[User, UserSocialAuth]:
    """Rows as social-auth's own ``load_extra_data`` writes them (GitHub App user tokens)."""
    bob = User.objects.create_user(username="bob", email="bob@example.com")
    identity = UserSocialAuth.objects.create(
        user=bob,
        provider="github",
        uid="4242",
        extra_data={
            "id": 4242,
            "login": "bob",
            "access_token": CANARY_ACCESS,
            "refresh_token": CANARY_REFRESH,
            "expires": 28800,
            "auth_time": int(time.time()),
            "token_type": "bearer",
            "_oidc_id_token_context": OIDC_CONTEXT,
        },
    )
    retired = User.objects.create_user(username="old", email="old@example.com", is_active=False)
    UserSocialAuth.objects.create(
        user=retired,
        provider="google-oauth2",
        uid="9999",
        extra_data={"access_token": CANARY_OTHER, "refresh_token": None, "expires": 3599},
    )
    return bob, identity


def _warnings() -> list[checks.CheckMessage]:
    return [m for m in checks.run_checks(include_deployment_checks=True) if m.id == "vault.W001"]


def test_plaintext_tokens_in_extra_data_are_moved_into_the_vault_and_scrubbed(
    client, capsys, caplog, django_capture_on_commit_callbacks
):
    sign_in(client, "github", email="alice@example.com")  # a normal row: nothing to do for it
    bob, identity = _stock_install()

    help_text = (
        load_command_class("vault", "vault_import_extra_data")
        .create_parser("manage.py", "vault_import_extra_data")
        .format_help()
    )
    assert "--dry-run" in help_text and "extra_data" in help_text
    warned = _warnings()
    assert len(warned) == 1 and "2 linked account(s) hold plaintext OAuth tokens" in warned[0].msg

    call_command("vault_import_extra_data", "--dry-run")
    dry = capsys.readouterr().out
    assert "Would move plaintext tokens of 2 linked account(s)" in dry
    identity.refresh_from_db()
    assert identity.extra_data["access_token"] == CANARY_ACCESS and not TokenSet.objects.filter(uid="4242")

    with django_capture_on_commit_callbacks(execute=True):
        call_command("vault_import_extra_data")
    out = capsys.readouterr().out
    assert "found on 2 linked account(s): 1 moved into the vault" in out
    assert "1 on retired profiles sent to revocation" in out and "2 scrubbed" in out

    identity.refresh_from_db()
    assert identity.extra_data == {"id": 4242, "login": "bob", "_oidc_id_token_context": OIDC_CONTEXT}
    assert not _warnings()
    # Encrypted in the vault and handed out as any captured token is.
    token = vault.get_access_token(bob, "github")
    assert token.access_token == CANARY_ACCESS
    assert TokenSet.objects.get(identity=identity).has_refresh_token

    database = "".join(serializers.serialize("json", m.objects.all()) for m in apps.get_models())
    for where, text in (
        ("command output", dry + out),
        ("logs", caplog.text + json.dumps([str(r.args) for r in caplog.records])),
        ("the database", database),
    ):
        for canary in (CANARY_ACCESS, CANARY_REFRESH, CANARY_OTHER, "CANARY0"):
            assert canary not in text, f"{canary[:12]}… found in {where}"

    call_command("vault_import_extra_data")  # again: nothing left to do
    assert "found on 0 linked account(s)" in capsys.readouterr().out
