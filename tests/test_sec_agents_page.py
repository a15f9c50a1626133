"""The agents page (issue 14.1): post/redirect/get, revoke asks first, old keys fold away, the
copy button, and the filled form surviving the "confirm it's you" detour."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.sessions.models import Session
from django.core import mail
from django.utils import timezone

from accounts.models import User
from vault import agents, page_state
from vault.models import AgentKey

from .flows import sign_in
from .leaks import cache_contents, decoded_sessions

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
FORM = {
    "name": "Claude at home",
    "providers": ["github"],
    "expires_in_days": "30",
    "scopes_github": "read:user",
}


@pytest.fixture
def alice(client) -> User:
    sign_in(client, "github", email="alice@example.com", name="Alice")
    return User.objects.get(email="alice@example.com")


def _shown_key(html: str) -> str | None:
    found = re.search(r'data-agent-key="([^"]+)"', html)
    return found.group(1) if found else None


def test_creating_a_key_redirects_and_the_key_is_shown_once(
    client, alice, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post("/settings/agents/", FORM)
    assert created.status_code == 303 and created.headers["Location"] == "/settings/agents/"
    assert _shown_key(created.content.decode()) is None
    row = AgentKey.objects.get()
    # Between the POST and the GET, the key is held only encrypted: not in the session table,
    # not in the session cache.
    raw = " ".join(Session.objects.values_list("session_data", flat=True))
    held = repr(decoded_sessions()) + repr(cache_contents()) + raw

    first = client.get("/settings/agents/")
    key = _shown_key(first.content.decode())
    assert key and row.key_hash == agents.keyformat.key_hash(key)
    assert key not in held and key[4:20] not in held
    assert "no-store" in first.headers["Cache-Control"]
    assert _shown_key(client.get("/settings/agents/").content.decode()) is None  # once, then forgotten
    assert key not in repr(decoded_sessions())
    assert AgentKey.objects.count() == 1 and len([m for m in mail.outbox if "agent key" in m.subject]) == 1


def test_a_held_key_is_not_shown_to_someone_else(client, alice):
    client.post("/settings/agents/", FORM)
    bob = User.objects.create_user("bob", "bob@example.com")
    held = dict(client.session.items())  # the same held value, read for another person
    assert page_state.pop_new_key(held, user_id=bob.pk) is None
    held = dict(client.session.items())
    assert page_state.pop_new_key(held, user_id=alice.pk) is not None


def test_the_new_key_wraps_and_has_a_copy_button_that_needs_no_inline_script(client, alice):
    client.post("/settings/agents/", FORM)
    html = client.get("/settings/agents/").content.decode()
    key = _shown_key(html)
    assert re.search(rf'<textarea id="new-agent-key" readonly[^>]*>{key}</textarea>', html)
    assert re.search(r'<button type="button"[^>]*data-copy-target="new-agent-key" hidden>', html)
    script = re.search(r'<script src="([^"]+copy-key\.js)" defer></script>', html).group(1)
    assert script.endswith("js/copy-key.js") and (ROOT / "static/js/copy-key.js").is_file()


def test_revoke_asks_first(client, alice):
    row, _key = agents.create_agent_key(user=alice, name="bot", providers=["github"])
    page = client.get(f"/settings/agents/{row.pk}/revoke/")
    assert page.status_code == 200 and "Revoke the agent key bot?" in page.content.decode()
    row.refresh_from_db()
    assert row.revoked_at is None  # asking changes nothing
    assert f'href="/settings/agents/{row.pk}/revoke/"' in client.get("/settings/agents/").content.decode()
    done = client.post(f"/settings/agents/{row.pk}/revoke/")
    assert done.status_code == 302
    row.refresh_from_db()
    assert row.revoked_at is not None
    # A revoked key (or someone else's) gets no confirm page.
    again = client.get(f"/settings/agents/{row.pk}/revoke/", follow=True)
    assert "no longer active" in again.content.decode()


def test_revoked_and_expired_keys_fold_away(client, alice):
    agents.create_agent_key(user=alice, name="still-on", providers=["github"])
    revoked, _ = agents.create_agent_key(user=alice, name="was-revoked", providers=["github"])
    expired, _ = agents.create_agent_key(user=alice, name="ran-out", providers=["github"])
    agents.revoke_agent_key(user=alice, key_id=revoked.pk)
    AgentKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(days=1))
    html = client.get("/settings/agents/").content.decode()
    before, _, folded = html.partition('<details class="card" data-past-keys>')
    assert folded and "Revoked and expired keys (2)" in folded
    assert "still-on" in before and "still-on" not in folded
    assert "was-revoked" in folded and "ran-out" in folded and "was-revoked" not in before


def test_the_sudo_detour_comes_back_to_the_filled_form(client, alice):
    session = client.session
    session["auth_at"] = int(time.time()) - 3600
    session.save()
    detour = client.post("/settings/agents/", {**FORM, "whole_grant": "on"})
    assert detour.headers["Location"].startswith("/settings/reauthenticate/")
    assert not AgentKey.objects.exists()
    session = client.session
    session["auth_at"] = int(time.time())  # confirmed it's them
    session.save()
    html = client.get("/settings/agents/").content.decode()
    assert 'value="Claude at home"' in html
    assert re.search(r'<input[^>]*value="github"[^>]*checked', html)
    assert 'value="read:user"' in html
    assert re.search(r'<input[^>]*name="whole_grant"[^>]*checked', html)
    assert 'value="Claude at home"' not in client.get("/settings/agents/").content.decode()  # once
    assert not AgentKey.objects.exists()  # nothing was created on the way


def test_the_full_history_of_a_key_is_paginated_and_only_its_owners(client, alice):
    row, _ = agents.create_agent_key(user=alice, name="busy", providers=["github"])
    other, _ = agents.create_agent_key(user=alice, name="quiet", providers=["github"])
    identity = alice.social_auth.get()
    for n in range(55):
        agents.record_token_issued(
            key=row,
            connection="github",
            identity_id=identity.pk,
            account_name=f"acct{n:02d}",
            scopes=["repo"],
            ip_address="127.0.0.1",
        )
    agents.record_token_issued(
        key=other,
        connection="github",
        identity_id=identity.pk,
        account_name="elsewhere",
        scopes=["repo"],
        ip_address="127.0.0.1",
    )
    overview = client.get("/settings/agents/").content.decode()
    assert f'href="/settings/agents/{row.pk}/history/"' in overview
    first = client.get(f"/settings/agents/{row.pk}/history/").content.decode()
    second = client.get(f"/settings/agents/{row.pk}/history/?page=2").content.decode()
    assert first.count("<tr data-grant>") == 50 and second.count("<tr data-grant>") == 5
    assert "acct54" in first and "acct00" in second and "elsewhere" not in first + second
    assert "Page 1 of 2" in first and 'href="?page=2"' in first
    bob = client.__class__()
    sign_in(bob, "github", email="bob@example.com", name="Bob")
    assert bob.get(f"/settings/agents/{row.pk}/history/").status_code == 404


def test_rename_a_key(client, alice):
    row, key = agents.create_agent_key(user=alice, name="old name", providers=["github"])
    assert client.get(f"/settings/agents/{row.pk}/rename/").status_code == 200
    bad = client.post(f"/settings/agents/{row.pk}/rename/", {"name": "   "})
    assert bad.status_code == 400
    row.refresh_from_db()
    assert row.name == "old name"  # bad input: nothing changed
    done = client.post(f"/settings/agents/{row.pk}/rename/", {"name": "new name"}, follow=True)
    assert "Renamed the agent key to new name." in done.content.decode()
    row.refresh_from_db()
    assert row.name == "new name" and agents.authenticate_agent_key(key).pk == row.pk  # still works
    bob = client.__class__()
    sign_in(bob, "github", email="bob@example.com", name="Bob")
    assert bob.post(f"/settings/agents/{row.pk}/rename/", {"name": "mine now"}).status_code == 404
    row.refresh_from_db()
    assert row.name == "new name"
