"""Staff: the admin shows identities without extra_data; the commands unlink and list."""

from __future__ import annotations

import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from social_django.models import UserSocialAuth

from accounts.activity_kinds import AccountKind
from accounts.models import User
from activity.models import Activity

from .flows import round_trip, sign_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(client) -> User:
    sign_in(client, "github", email="alice@example.com")
    round_trip(client, "google-oauth2", email="alice@example.com")
    return User.objects.get(email="alice@example.com")


@pytest.fixture
def staff_client(client):
    from django.test import Client

    staff = User.objects.create_superuser("root", "root@example.com", "pw-for-tests-only-123")
    c = Client()
    c.force_login(staff)
    return c


def test_admin_user_page_lists_identities_inline_without_extra_data(alice, staff_client):
    identity = alice.social_auth.get(provider="github")
    identity.extra_data = {"marker": "EXTRA-DATA-MUST-NOT-SHOW"}
    identity.save()
    page = staff_client.get(f"/admin/accounts/user/{alice.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200
    assert identity.uid in html and "Google" in html
    assert "EXTRA-DATA-MUST-NOT-SHOW" not in html
    detail = staff_client.get(f"/admin/social_django/usersocialauth/{identity.pk}/change/")
    assert detail.status_code == 200
    assert "EXTRA-DATA-MUST-NOT-SHOW" not in detail.content.decode()
    assert "extra_data" not in detail.content.decode()


def test_admin_cannot_edit_identities_or_see_partials(alice, staff_client):
    identity = alice.social_auth.get(provider="github")
    response = staff_client.post(
        f"/admin/social_django/usersocialauth/{identity.pk}/change/",
        {"uid": "999", "provider": "github", "user": alice.pk},
    )
    assert response.status_code == 403
    identity.refresh_from_db()
    assert identity.uid != "999"
    assert staff_client.get("/admin/social_django/partial/").status_code == 404


def test_admin_unlink_action_keeps_the_rules_and_records_the_staff_actor(alice, staff_client):
    google = alice.social_auth.get(provider="google-oauth2")
    github = alice.social_auth.get(provider="github")
    staff_client.post(
        "/admin/social_django/usersocialauth/",
        {"action": "unlink_selected", "_selected_action": [google.pk, github.pk]},
    )
    # One goes; the other is then the last way to sign in, so it stays.
    assert alice.social_auth.count() == 1
    record = Activity.objects.get(user=alice, kind=AccountKind.UNLINKED)
    assert record.actor.username == "root"


def test_accounts_identities_command_lists_them(alice, capsys):
    call_command("accounts_identities", alice.email)
    out = capsys.readouterr().out
    assert "GitHub" in out and "Google" in out and "(verified)" in out
    call_command("accounts_identities", str(alice.pk), "--json")
    assert '"provider": "github"' in capsys.readouterr().out


def test_accounts_unlink_dry_run_changes_nothing_then_unlinks(alice, capsys):
    google = alice.social_auth.get(provider="google-oauth2")
    call_command("accounts_unlink", str(alice.pk), str(google.pk), "--dry-run")
    assert "Would unlink Google identity" in capsys.readouterr().out
    assert alice.social_auth.count() == 2
    call_command("accounts_unlink", alice.username, str(google.pk))
    assert "Unlinked Google identity" in capsys.readouterr().out
    assert not UserSocialAuth.objects.filter(pk=google.pk).exists()


def test_accounts_unlink_refuses_clearly(alice):
    github = alice.social_auth.get(provider="github")
    with pytest.raises(CommandError, match="No user matches"):
        call_command("accounts_unlink", "nobody@example.com", str(github.pk))
    with pytest.raises(CommandError, match="not found on your profile"):
        call_command("accounts_unlink", str(alice.pk), "424242")
    google = alice.social_auth.get(provider="google-oauth2")
    call_command("accounts_unlink", str(alice.pk), str(google.pk))
    with pytest.raises(CommandError, match="only way to sign in"):
        call_command("accounts_unlink", str(alice.pk), str(github.pk))
    assert alice.social_auth.count() == 1


def test_activity_page_shows_the_users_own_records_only(client, alice):
    from django.test import Client

    other = Client()
    sign_in(other, "github", email="bob@example.com")
    page = client.get("/settings/activity/")
    html = page.content.decode()
    assert "Linked an account" in html
    assert "bob@example.com" not in html
    assert html.count('data-kind="') == Activity.objects.filter(user=alice).count()


def test_admin_unlink_action_needs_a_recent_sign_in(alice, staff_client):
    session = staff_client.session
    session["auth_at"] = int(time.time()) - 3600
    session.save()
    google = alice.social_auth.get(provider="google-oauth2")
    response = staff_client.post(
        "/admin/social_django/usersocialauth/", {"action": "unlink_selected", "_selected_action": [google.pk]}
    )
    assert response.headers["Location"].startswith("/settings/reauthenticate/?next=")
    assert alice.social_auth.count() == 2
    assert not Activity.objects.filter(kind=AccountKind.UNLINKED).exists()


def test_accounts_unlink_records_the_staff_actor_and_refuses_anyone_else(alice, capsys):
    User.objects.create_superuser("root", "root@example.com", "pw-for-tests-only-123")
    google = alice.social_auth.get(provider="google-oauth2")
    with pytest.raises(CommandError, match="not a staff member"):
        call_command("accounts_unlink", str(alice.pk), str(google.pk), "--actor", alice.username)
    assert alice.social_auth.count() == 2
    call_command("accounts_unlink", str(alice.pk), str(google.pk), "--actor", "root")
    record = Activity.objects.get(user=alice, kind=AccountKind.UNLINKED)
    assert record.actor.username == "root" and alice.social_auth.count() == 1
