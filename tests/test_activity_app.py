"""The audit trail as its own app (issue 13.4): records go through ``Activity.save()`` (its
append-only guard runs), kinds belong to the apps that record them, and moving the model out of
``accounts`` kept every row of an existing database."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models.signals import pre_save
from django.test import Client

from accounts.activity_kinds import AccountKind
from accounts.models import User
from activity import kinds, recording
from activity.models import Activity
from authserver.activity_kinds import AuthserverKind
from vault import agents, hotpath
from vault.activity_kinds import VaultKind

from .flows import round_trip, sign_in

BEFORE_THE_MOVE = [("accounts", "0005_identitydetails_issuer"), ("activity", None)]


@pytest.mark.django_db
def test_the_sites_own_records_go_through_the_append_only_guard(client):
    saved: list[int | None] = []

    def seen(sender, instance, **kwargs):
        saved.append(instance.pk)  # before the insert: None for a new record

    pre_save.connect(seen, sender=Activity)
    try:
        sign_in(client, "github", email="alice@example.com")
        round_trip(client, "github", email="alice-work@example.com")
        alice = User.objects.get(email="alice@example.com")
        raw = agents.create_agent_key(user=alice, name="bot", providers=["github"])[1]
        response = Client().post(
            "/api/v1/token",
            json.dumps({"connection": "github"}),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {raw}",
        )
        agents.revoke_all_keys(user=alice, reason="done")
        client.post("/logout/")
    finally:
        pre_save.disconnect(seen, sender=Activity)
    assert response.status_code == 200
    kinds_written = set(Activity.objects.values_list("kind", flat=True))
    assert {AccountKind.LINKED, AccountKind.SIGNED_OUT} <= kinds_written
    assert {VaultKind.AGENT_KEY_CREATED, VaultKind.AGENT_KEY_REVOKED, VaultKind.TOKEN_ISSUED} <= kinds_written
    # Every record the site wrote went through Activity.save(), so the guard ran for each; only
    # the token-issued record takes the hot path's fast insert.
    assert len(saved) == Activity.objects.exclude(kind=VaultKind.TOKEN_ISSUED).count()
    assert set(saved) == {None}
    entry = Activity.objects.filter(user=alice).first()
    entry.message = "rewritten"
    with pytest.raises(ValueError, match="append-only"):
        entry.save()
    assert Activity.objects.get(pk=entry.pk).message != "rewritten"


@pytest.mark.django_db
def test_only_the_token_issued_record_takes_the_fast_insert(client):
    sign_in(client, "github", email="alice@example.com")
    alice = User.objects.get()
    with pytest.raises(ValueError, match="token-issued"):
        hotpath.insert_token_issued(recording.new_record(kind=AccountKind.LINKED, user=alice))
    entry = recording.new_record(kind=VaultKind.TOKEN_ISSUED, user=alice, provider="github")
    hotpath.insert_token_issued(entry)
    with pytest.raises(ValueError, match="token-issued"):
        hotpath.insert_token_issued(entry)  # an existing record is never written again
    assert Activity.objects.filter(kind=VaultKind.TOKEN_ISSUED).count() == 1


@pytest.mark.django_db
def test_each_app_declares_its_kinds_and_pages_show_their_labels(client):
    declared = set(AccountKind.values) | set(VaultKind.values) | set(AuthserverKind.values)
    assert {value for value, _ in kinds.choices()} == declared
    sign_in(client, "github", email="alice@example.com")
    record = Activity.objects.get(kind=AccountKind.LINKED)
    assert record.get_kind_display() == "Linked an account"
    assert "Linked an account" in client.get("/settings/activity/").content.decode()
    assert kinds.label("no_longer_declared") == "no_longer_declared"


@pytest.mark.django_db(transaction=True)
def test_moving_the_model_out_of_accounts_keeps_every_row():
    type_id = ContentType.objects.get_for_model(Activity).pk
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE_THE_MOVE)
    old = executor.loader.project_state(BEFORE_THE_MOVE[0]).apps
    person = old.get_model("accounts", "User").objects.create(username="old-person", email="old@example.com")
    OldActivity = old.get_model("accounts", "Activity")
    written = [
        OldActivity.objects.create(user=person, kind="signed_in", message="Signed in", data={"n": 1}),
        OldActivity.objects.create(
            user=person, kind="token_issued", agent_key_id=7, ip_address="203.0.113.9"
        ),
        OldActivity.objects.create(user=None, kind="link_refused", data={"code": "x"}),
    ]
    old_type = ContentType.objects.get(pk=type_id)
    assert (old_type.app_label, old_type.model) == ("accounts", "activity")

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    ContentType.objects.clear_cache()

    kept = {a.pk: a for a in Activity.objects.all()}
    assert set(kept) == {w.pk for w in written}
    for before in written:
        after = kept[before.pk]
        assert (
            after.user_id,
            after.kind,
            after.message,
            after.data,
            after.agent_key_id,
            after.ip_address,
        ) == (
            before.user_id,
            before.kind,
            before.message,
            before.data,
            before.agent_key_id,
            before.ip_address,
        )
        assert after.created_at == before.created_at
    assert Activity._meta.db_table == "accounts_activity"
    # The content type moved with the model: permissions granted on it still apply.
    assert ContentType.objects.get_for_model(Activity).pk == type_id


def test_the_activity_app_imports_nothing_of_the_sites_own():
    """Import direction: authserver -> vault -> accounts -> activity (activity knows none of them)."""
    root = Path(__file__).resolve().parent.parent
    ours = {"accounts", "vault", "sandbox", "linking_site", "authserver", "bench", "tests"}
    offenders = []
    for path in (root / "activity").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ours]
    assert offenders == []
