"""Disconnect: a confirmation page, exactly one identity by id, never the last way to sign in."""

from __future__ import annotations

import time

import pytest
from django.core import mail
from django.test import Client
from social_django.models import UserSocialAuth

from accounts.activity_kinds import AccountKind
from accounts.models import User
from activity.models import Activity

from .flows import messages_on, round_trip, sign_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(client) -> User:
    sign_in(client, "github", email="alice@example.com")
    round_trip(client, "github", email="alice-second@example.com")
    round_trip(client, "google-oauth2", email="alice@example.com")
    user = User.objects.get()
    assert user.social_auth.count() == 3
    return user


def test_confirmation_page_then_exactly_that_identity_goes(client, alice, django_capture_on_commit_callbacks):
    second = alice.social_auth.get(details__email="alice-second@example.com")
    confirm = client.get(f"/settings/connections/{second.pk}/disconnect/")
    assert confirm.status_code == 200
    html = confirm.content.decode()
    assert "Disconnect GitHub account" in html and 'method="post"' in html
    assert alice.social_auth.count() == 3  # GET changes nothing
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/settings/connections/{second.pk}/disconnect/")
    assert response.headers["Location"] == "/settings/connections/"
    remaining = sorted(alice.social_auth.values_list("provider", flat=True))
    assert remaining == ["github", "google-oauth2"]  # the other GitHub account stays
    assert not UserSocialAuth.objects.filter(pk=second.pk).exists()
    assert any("Removed your GitHub account" in m for m in messages_on(client))
    assert Activity.objects.filter(user=alice, kind=AccountKind.UNLINKED, identity_id=second.pk).exists()
    assert any("was removed from your profile" in m.subject for m in mail.outbox)


def test_last_sign_in_method_cannot_be_removed(client):
    sign_in(client, "github", email="solo@example.com")
    user = User.objects.get()
    only = user.social_auth.get()
    page = client.get(f"/settings/connections/{only.pk}/disconnect/")
    assert "only way to sign in" in page.content.decode()
    client.post(f"/settings/connections/{only.pk}/disconnect/")
    assert user.social_auth.count() == 1
    assert any("only way to sign in" in m for m in messages_on(client))


def test_last_identity_can_go_when_a_password_remains(client):
    sign_in(client, "github", email="solo@example.com")
    user = User.objects.get()
    user.set_password("a long enough password 123")
    user.save()
    client.force_login(user)  # a password change ends sessions; sign in again
    only = user.social_auth.get()
    client.post(f"/settings/connections/{only.pk}/disconnect/")
    assert user.social_auth.count() == 0


def test_another_users_identity_id_is_answered_like_an_unknown_one(client, alice):
    bob_client = Client()
    sign_in(bob_client, "google-oauth2", email="bob@example.com")
    bob_identity = UserSocialAuth.objects.get(user__email="bob@example.com")
    for identity_id in (bob_identity.pk, 999999):
        response = client.post(f"/settings/connections/{identity_id}/disconnect/")
        assert response.headers["Location"] == "/settings/connections/"
        assert any("not found on your profile" in m for m in messages_on(client))
    assert UserSocialAuth.objects.filter(pk=bob_identity.pk).exists()
    assert alice.social_auth.count() == 3


def test_disconnect_needs_a_recent_sign_in(client, alice):
    session = client.session
    session["auth_at"] = int(time.time()) - 3600
    session.save()
    target = alice.social_auth.filter(provider="google-oauth2").get()
    response = client.post(f"/settings/connections/{target.pk}/disconnect/")
    assert response.headers["Location"].startswith("/settings/reauthenticate/")
    assert alice.social_auth.count() == 3


def test_disconnect_is_not_a_get(client, alice):
    target = alice.social_auth.filter(provider="google-oauth2").get()
    client.get(f"/settings/connections/{target.pk}/disconnect/")
    client.get(f"/settings/connections/{target.pk}/disconnect/?confirm=1")
    assert alice.social_auth.count() == 3


def test_social_auths_own_disconnect_urls_are_not_mounted(client, alice):
    assert client.post("/disconnect/github/").status_code == 404
    assert alice.social_auth.count() == 3


def test_making_another_users_identity_the_default_is_refused(client, alice):
    bob_client = Client()
    sign_in(bob_client, "github", email="bob@example.com")
    round_trip(bob_client, "github", email="bob-work@example.com")
    bobs_second = UserSocialAuth.objects.get(details__email="bob-work@example.com")
    defaults_before = sorted(
        UserSocialAuth.objects.filter(details__is_default=True).values_list("pk", flat=True)
    )
    response = client.post(f"/settings/connections/{bobs_second.pk}/default/")
    assert response.headers["Location"] == "/settings/connections/"
    assert not any("is now the default" in m for m in messages_on(client))
    assert (
        sorted(UserSocialAuth.objects.filter(details__is_default=True).values_list("pk", flat=True))
        == defaults_before
    )
