"""One read-only admin mixin: no forms edit rows, and actions follow the model's change permission."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from accounts.models import User
from vault import agents
from vault.models import AgentKey

from .flows import sign_in

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/vault/agentkey/"


def _staff(*codenames: str) -> Client:
    staff = User.objects.create_user(
        "helpdesk", "helpdesk@example.com", "pw-for-tests-only-123", is_staff=True
    )
    staff.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def key_row() -> AgentKey:
    sign_in(Client(), "github", email="alice@example.com")
    row, _key = agents.create_agent_key(user=User.objects.get(), name="bot", providers=["github"])
    return row


def _revoke(client: Client, row: AgentKey):
    return client.post(CHANGELIST, {"action": "revoke_selected", "_selected_action": [row.pk], "index": 0})


def test_staff_who_may_change_keys_are_offered_the_revoke_action_and_it_works(key_row):
    staff = _staff("view_agentkey", "change_agentkey")
    assert "Revoke selected agent keys" in staff.get(CHANGELIST).content.decode()
    _revoke(staff, key_row)
    key_row.refresh_from_db()
    assert key_row.revoked_at is not None


def test_staff_who_may_only_view_keys_are_not_offered_the_action_and_cannot_post_it(key_row):
    staff = _staff("view_agentkey")
    assert "Revoke selected agent keys" not in staff.get(CHANGELIST).content.decode()
    _revoke(staff, key_row)
    key_row.refresh_from_db()
    assert key_row.revoked_at is None


def test_no_form_edits_a_read_only_row_even_for_a_superuser(key_row):
    root = User.objects.create_superuser("root", "root@example.com", "pw-for-tests-only-123")
    client = Client()
    client.force_login(root)
    page = client.get(f"{CHANGELIST}{key_row.pk}/change/").content.decode()
    assert 'name="_save"' not in page and "/delete/" not in page
    assert client.post(f"{CHANGELIST}{key_row.pk}/change/", {"name": "renamed"}).status_code == 403
    assert client.get(f"{CHANGELIST}add/").status_code == 403
    key_row.refresh_from_db()
    assert key_row.name == "bot"
