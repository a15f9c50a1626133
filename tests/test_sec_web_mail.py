"""Issue 12 (plain-text mail) and 20.8 (mail only to provider-verified addresses, no chosen text in
subjects): what lands in a person's mailbox."""

from __future__ import annotations

import pytest
from django.core import mail
from django.test import Client

from accounts.models import User
from vault import agents

from .flows import round_trip, sign_in

pytestmark = pytest.mark.django_db

HOSTILE_NAME = '<script>alert("x")</script> & co\nUnrecognised login - visit http://evil.example/secure now'


def _create_key(user: User, name: str, capture) -> None:
    with capture(execute=True):
        agents.create_agent_key(user=user, name=name, providers=["github"])


def test_the_new_key_mail_is_plain_text_with_the_name_quoted_on_one_line(
    client, django_capture_on_commit_callbacks
):
    sign_in(client, "github", email="alice@example.com")
    alice = User.objects.get()
    mail.outbox.clear()
    _create_key(alice, HOSTILE_NAME, django_capture_on_commit_callbacks)
    [message] = mail.outbox
    assert message.to == ["alice@example.com"]
    # The subject is the site's words only: the sender is real, the name is anyone's text.
    assert "evil" not in message.subject and "script" not in message.subject
    assert message.subject == "A new agent key was created on your profile"
    # The body quotes it as the person's words, exactly as typed, on one line, never as HTML.
    assert (
        'named “<script>alert("x")</script> & co Unrecognised login - visit http://evil.example/secure now”'
        in message.body
    )
    assert "&lt;" not in message.body and "&amp;" not in message.body and "&quot;" not in message.body
    assert "\nUnrecognised" not in message.body


def test_linked_and_removed_mails_quote_the_account_name_and_keep_it_out_of_the_subject(
    client, django_capture_on_commit_callbacks
):
    sign_in(client, "github", email="alice@example.com", name="Alice")
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        round_trip(client, "google-oauth2", email="alice@example.com", name="Visit\nhttp://evil.example <b>")
    [message] = mail.outbox
    assert message.subject == "A Google account was linked to your profile"
    assert "named “Visit http://evil.example <b>”" in message.body and "&lt;" not in message.body
    assert "Hello,\n" in message.body  # no chosen name in the greeting either


def test_an_unverified_sign_in_email_never_becomes_the_profiles_address(
    client, django_capture_on_commit_callbacks
):
    sign_in(client, "github", email="victim@example.com", verified=False)
    user = User.objects.get()
    assert user.email == ""
    mail.outbox.clear()
    _create_key(user, "bot", django_capture_on_commit_callbacks)
    assert mail.outbox == []
    # The person is told, once, on the connections page.
    page = client.get("/settings/connections/").content.decode()
    assert "data-no-notice-address" in page


def test_notices_go_only_to_a_provider_verified_address(client, django_capture_on_commit_callbacks):
    sign_in(client, "google-oauth2", email="alice@example.com")
    alice = User.objects.get()
    assert "data-no-notice-address" not in client.get("/settings/connections/").content.decode()
    # An address nobody verified (a profile from before this rule, or set by hand) gets nothing.
    User.objects.filter(pk=alice.pk).update(email="someone-else@example.com")
    alice.refresh_from_db()
    mail.outbox.clear()
    _create_key(alice, "bot", django_capture_on_commit_callbacks)
    assert mail.outbox == []
    assert "data-no-notice-address" in client.get("/settings/connections/").content.decode()
    # Back to the verified one: notices resume.
    User.objects.filter(pk=alice.pk).update(email="alice@example.com")
    alice.refresh_from_db()
    _create_key(alice, "bot 2", django_capture_on_commit_callbacks)
    assert [m.to for m in mail.outbox] == [["alice@example.com"]]


def test_a_verified_sign_in_still_sets_the_address(client):
    sign_in(client, "github", email="Bob@Example.COM")
    assert User.objects.get().email.lower() == "bob@example.com"
    assert Client().get("/").status_code == 200
