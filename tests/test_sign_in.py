"""Sign-in: first sign-in makes the profile, later sign-ins land on it; begin is POST + CSRF."""

from __future__ import annotations

import pytest
from django.test import Client
from social_django.models import UserSocialAuth

from accounts.activity_kinds import AccountKind
from accounts.models import IdentityDetails, User
from activity.models import Activity

from .flows import round_trip, sign_in

pytestmark = pytest.mark.django_db


def test_sign_in_page_lists_configured_providers_as_post_forms(client):
    page = client.get("/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "Continue with Google" in html
    assert "Continue with GitHub" in html
    assert 'action="/login/github/"' in html
    assert 'method="post"' in html
    assert "csrfmiddlewaretoken" in html


def test_begin_refuses_get(client):
    response = client.get("/login/github/")
    assert response.status_code == 405
    assert not UserSocialAuth.objects.exists()


def test_begin_needs_a_csrf_token():
    client = Client(enforce_csrf_checks=True)
    response = client.post("/login/github/", {"next": "/settings/connections/"})
    assert response.status_code == 403


def test_begin_for_an_unknown_provider_is_not_found(client):
    assert client.post("/login/myspace/").status_code == 404


def test_first_sign_in_creates_profile_from_that_identity(client):
    result = sign_in(client, "github", email="alice@example.com", name="Alice Liddell")
    assert result.response.headers["Location"] == "/settings/connections/"
    user = User.objects.get()
    assert user.name == "Alice Liddell"
    assert user.email == "alice@example.com"
    assert user.avatar_url  # the sandbox gives GitHub-style avatar URLs
    identity = UserSocialAuth.objects.get(user=user)
    assert identity.provider == "github"
    assert identity.uid.isdigit()  # GitHub's numeric id, never the login or email
    details = IdentityDetails.objects.get(identity=identity)
    assert details.created_profile is True
    assert details.email_verified is True
    assert details.last_login_at is not None
    page = client.get("/settings/connections/")
    assert page.status_code == 200
    assert f'data-uid="{identity.uid}"' in page.content.decode()
    assert Activity.objects.filter(user=user, kind=AccountKind.LINKED).exists()


def test_signing_in_again_lands_on_the_same_profile(client):
    sign_in(client, "github", email="alice@example.com")
    client.post("/logout/")
    other = Client()
    sign_in(other, "github", email="alice@example.com")
    assert User.objects.count() == 1
    assert UserSocialAuth.objects.count() == 1
    assert other.get("/settings/connections/").context["user"] == User.objects.get()
    assert Activity.objects.filter(kind=AccountKind.SIGNED_IN).count() == 1


def test_same_email_gives_the_same_subject_and_different_email_a_new_profile(client):
    sign_in(client, "google-oauth2", email="alice@example.com")
    client.post("/logout/")
    sign_in(client, "google-oauth2", email="bob@example.com")
    assert User.objects.count() == 2
    assert UserSocialAuth.objects.values("uid").distinct().count() == 2


def test_sign_out_is_post_only_and_ends_the_session(client):
    sign_in(client, "github")
    assert client.get("/logout/").status_code == 405
    assert client.get("/settings/connections/").status_code == 200
    response = client.post("/logout/")
    assert response.status_code == 302
    assert client.get("/settings/connections/").status_code == 302  # back to sign-in


def test_every_signed_in_page_has_a_sign_out_button(client):
    sign_in(client, "github")
    for path in ("/settings/connections/", "/settings/activity/", "/settings/reauthenticate/"):
        html = client.get(path).content.decode()
        assert 'action="/logout/"' in html and "Sign out" in html, path


def test_staff_sign_in_with_password(client):
    User.objects.create_superuser("root", "root@example.com", "correct horse battery")
    bad = client.post("/staff/login/", {"username": "root", "password": "wrong"})
    assert bad.status_code == 200
    assert "enter a correct username and password" in bad.content.decode().lower()
    good = client.post("/staff/login/", {"username": "root", "password": "correct horse battery"})
    assert good.status_code == 302
    assert good.headers["Location"] == "/settings/connections/"
    assert client.get("/admin/").status_code == 200


def test_sign_in_page_redirects_signed_in_users(client):
    sign_in(client, "github")
    assert client.get("/").headers["Location"] == "/settings/connections/"


def test_denied_sign_in_creates_nothing_and_explains(client):
    result = round_trip(client, "github", email="alice@example.com", deny=True)
    assert result.response.status_code == 302
    assert result.response.headers["Location"] == "/"
    assert not User.objects.exists()
    page = client.get("/")
    assert "You cancelled at GitHub" in page.content.decode()


def test_safe_next_is_followed_and_foreign_next_is_not(client):
    result = sign_in(client, "github", email="alice@example.com", next="/settings/activity/")
    assert result.response.headers["Location"] == "/settings/activity/"
    client.post("/logout/")
    for evil in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"):
        result = sign_in(client, "github", email="alice@example.com", next=evil)
        assert result.response.headers["Location"] == "/settings/connections/", evil
        client.post("/logout/")


def test_callback_is_never_cached(client):
    result = sign_in(client, "github")
    assert "no-store" in result.response.headers.get("Cache-Control", "")
