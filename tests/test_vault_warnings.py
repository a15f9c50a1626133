"""Issue 14.5: warning mail before things break, at most once per thing per day, from vault_refresh.

An agent key about to expire, a connection that needs "Reconnect" (the provider refused to renew, the
stored value cannot be read), and a renewal failing for a day: each mailed to the person's verified
address in plain words, with the provider's title, a time that says UTC, what to do, and a link to
the page built from SITE_URL. Canary tokens seeded in the vault and the agent key never reach a mail.
"""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, transaction
from django.test import Client
from django.utils import timezone
from social_django.models import UserSocialAuth

import vault
from accounts.models import User
from accounts.templatetags.plain_words import when_text
from activity.models import Activity
from vault import agents, errors, provider_calls
from vault.activity_kinds import VaultKind
from vault.models import AgentKey, TokenSet, WarningSent
from vault.warnings import send_due_warnings

from .flows import round_trip, sign_in
from .leaks import store_canaries
from .vault_support import expire, http_status, let_pause_pass, patch_transport, run_in_threads

pytestmark = pytest.mark.django_db

CANARY_ACCESS = "gho_CANARYwarnaccess4b7d1e9f"
CANARY_REFRESH = "ghr_CANARYwarnrefresh8c2a5f3e"
DAY = timedelta(days=1)
#: GitHub's answer to a refresh (a GitHub App's user token: it expires and rotates).
RENEWED = (
    b'{"access_token": "gho_CANARYrenewed6e2f8a0c", "expires_in": 28800, '
    b'"refresh_token": "ghr_CANARYrenewed1d3b5c7e", "refresh_token_expires_in": 15897600, '
    b'"scope": "", "token_type": "bearer"}'
)


@pytest.fixture(autouse=True)
def _no_retry_pause(monkeypatch):
    monkeypatch.setattr(provider_calls, "RETRY_BACKOFF", (0.0, 0.0))


@pytest.fixture
def alice(client) -> User:
    """Signed in with GitHub (a verified address), its tokens replaced by canaries."""
    sign_in(client, "github", email="alice@example.com")
    github = UserSocialAuth.objects.get(provider="github")
    store_canaries(github, access=CANARY_ACCESS, refresh=CANARY_REFRESH)
    mail.outbox.clear()
    return User.objects.get()


def _github(user: User) -> TokenSet:
    return TokenSet.objects.get(identity__user=user, identity__provider="github")


def _login(user: User) -> str:
    """The GitHub login the sandbox gave (``alice-…``): how the mail names the account."""
    return UserSocialAuth.objects.get(user=user, provider="github").details.account_name


def _clean(messages, *secrets: str) -> None:
    for message in messages:
        for secret in (CANARY_ACCESS, CANARY_REFRESH, *secrets):
            assert secret not in message.body and secret not in message.subject


def _provider_answers(monkeypatch, status: int, body: bytes) -> None:
    """GitHub's token endpoint answers every refresh with this (the sandbox's shape of an error)."""
    patch_transport(
        monkeypatch,
        when=lambda method, url: method == "POST" and "access_token" in url,
        answer=http_status(status, body),
    )


def _refused_to_renew(user: User, monkeypatch) -> None:
    """GitHub says invalid_grant (the grant was withdrawn there): the set now needs "Reconnect"."""
    expire(_github(user))
    with monkeypatch.context() as patched:
        _provider_answers(patched, 400, b'{"error": "invalid_grant"}')
        with pytest.raises(errors.ReauthorizationRequired):
            vault.get_access_token(user, "github")


def _aged_key(user: User, name: str = "bot") -> tuple[AgentKey, str]:
    """A 7-day key made five days ago: two days left, in its warning window now."""
    row, key = agents.create_agent_key(user=user, name=name, providers=["github"], expires_in_days=7)
    AgentKey.objects.filter(pk=row.pk).update(
        created_at=row.created_at - 5 * DAY, expires_at=row.expires_at - 5 * DAY
    )
    row.refresh_from_db()
    return row, key


def test_an_expiring_key_is_mailed_once_a_day_with_the_link_and_plain_words(alice, settings):
    row, key = agents.create_agent_key(
        user=alice, name="Nightly\nbot <b>", providers=["github", "google-oauth2"], expires_in_days=7
    )
    mail.outbox.clear()
    start = timezone.now()
    # A new 7-day key is not "expiring soon" the moment it is made (default: 7 days' warning).
    assert send_due_warnings().sent == 0

    counts = send_due_warnings(now=start + 4 * DAY)

    assert (counts.key_expiring, counts.sent) == (1, 1)
    [message] = mail.outbox
    assert message.to == ["alice@example.com"]
    assert message.subject == "An agent key on your profile expires soon"  # no chosen text in it
    assert "named “Nightly bot <b>”" in message.body and "&lt;" not in message.body
    assert f"expires on {when_text(row.expires_at)}." in message.body and " UTC." in message.body
    assert "get access to GitHub and Google for you" in message.body
    assert "github" not in message.body.replace("GitHub", "") and "oauth2" not in message.body
    assert "create a new key on the agents page" in message.body
    assert "The agents page: http://testserver/settings/agents/\n" in message.body
    _clean(mail.outbox, key)

    # Not again the same day, however often cron runs.
    again = send_due_warnings(now=start + 4 * DAY)
    assert (again.sent, again.already_sent) == (0, 1) and len(mail.outbox) == 1
    # The next day it is still true: mailed again.
    assert send_due_warnings(now=start + 5 * DAY).key_expiring == 1
    assert len(mail.outbox) == 2
    # The number of days is a setting.
    settings.VAULT_KEY_EXPIRY_WARNING_DAYS = 1
    assert send_due_warnings(now=start + 5.5 * DAY).sent == 0  # a day and a half left
    assert send_due_warnings(now=start + 6.5 * DAY).key_expiring == 1
    settings.VAULT_KEY_EXPIRY_WARNING_DAYS = 0  # off
    assert send_due_warnings(now=start + 6.7 * DAY).sent == 0
    assert len(mail.outbox) == 3


def test_revoked_and_expired_keys_and_people_without_an_address_get_no_mail(alice, client):
    revoked = _aged_key(alice, "old")[0]
    agents.revoke_agent_key(user=alice, key_id=revoked.pk)
    gone = _aged_key(alice, "gone")[0]
    AgentKey.objects.filter(pk=gone.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    # Bea's sign-in address was not verified by GitHub: the profile has no address to mail.
    client.post("/logout/")
    sign_in(Client(), "github", email="bea@example.com", verified=False)
    bea = User.objects.exclude(pk=alice.pk).get()
    _aged_key(bea, "bea's")
    mail.outbox.clear()

    counts = send_due_warnings()

    assert mail.outbox == []
    assert (counts.sent, counts.no_address) == (0, 1)
    assert not WarningSent.objects.exists()  # nothing claimed: a verified address later gets it


def test_a_connection_github_refuses_to_renew_is_mailed_by_vault_refresh(alice, monkeypatch):
    _refused_to_renew(alice, monkeypatch)
    token_set = _github(alice)
    assert token_set.status == TokenSet.Status.RECONNECT_REQUIRED

    out = io.StringIO()
    call_command("vault_refresh", stdout=out, stderr=io.StringIO())

    assert "Warnings mailed: 0 agent key expiring, 1 reconnect needed, 0 renewal failing" in out.getvalue()
    [message] = mail.outbox
    assert message.subject == "Reconnect your GitHub account"
    assert f"This site can no longer use your GitHub account named “{_login(alice)}”" in message.body
    assert "GitHub no longer accepts the access you gave this site" in message.body
    assert f"since {when_text(token_set.last_error_at)}." in message.body and "UTC" in message.body
    assert "press “Reconnect GitHub”" in message.body
    assert "The connections page: http://testserver/settings/connections/\n" in message.body
    assert "token set" not in message.body and "invalid_grant" not in message.body
    _clean(mail.outbox)

    # The page it links to offers that very button.
    page = Client()
    page.force_login(alice)
    assert "Reconnect GitHub" in page.get("/settings/connections/").content.decode()

    call_command("vault_refresh", stdout=io.StringIO(), stderr=io.StringIO())
    assert len(mail.outbox) == 1  # once a day
    assert send_due_warnings(now=timezone.now() + DAY).reconnect_needed == 1
    assert len(mail.outbox) == 2


def test_a_stored_value_that_cannot_be_read_is_a_reconnect_mail_too(alice):
    token_set = _github(alice)
    assert token_set.flag_vault_fault(code="decryption_failed")

    assert send_due_warnings().reconnect_needed == 1
    [message] = mail.outbox
    assert "the access this site stored for it can no longer be read here" in message.body
    assert "decryption" not in message.body
    _clean(mail.outbox)


def test_a_removed_connection_gets_no_mail(alice, client, django_capture_on_commit_callbacks):
    round_trip(client, "google-oauth2", email="alice@example.com")
    google = UserSocialAuth.objects.get(provider="google-oauth2")
    TokenSet.objects.get(identity=google).mark_reconnect_required(code="invalid_grant")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/settings/connections/{google.pk}/disconnect/")
    assert response.status_code == 302 and not UserSocialAuth.objects.filter(pk=google.pk).exists()
    mail.outbox.clear()

    assert send_due_warnings().sent == 0
    assert mail.outbox == []


def test_a_renewal_failing_for_a_day_is_mailed_and_stops_once_it_works(alice, monkeypatch):
    token_set = _github(alice)
    expire(token_set)
    with monkeypatch.context() as patched:
        _provider_answers(patched, 503, b'{"error": "server_error"}')
        with pytest.raises(errors.ProviderUnavailable):
            vault.get_access_token(alice, "github")
        first_failure = Activity.objects.get(kind=VaultKind.REFRESH_FAILED).created_at

        # Failing, but not for a day yet.
        assert send_due_warnings().sent == 0
        # Still failing a day later (cron kept trying).
        later = first_failure + DAY + timedelta(minutes=5)
        let_pause_pass(token_set)
        with pytest.raises(errors.ProviderUnavailable):
            vault.get_access_token(alice, "github")

    counts = send_due_warnings(now=later)

    assert counts.refresh_failing == 1 and counts.reconnect_needed == 0
    [message] = mail.outbox
    assert message.subject == "Your GitHub access has not been renewed for a day"
    assert (
        f"this site has not been able to renew its access to your GitHub account named “{_login(alice)}”"
        in message.body
    )
    assert "GitHub did not answer, or answered with an error" in message.body
    assert f"Since {when_text(first_failure)}, this site" in message.body and " UTC, " in message.body
    assert "Nothing is lost" in message.body and "press “Connect GitHub”" in message.body
    assert "http://testserver/settings/connections/" in message.body
    assert "server_error" not in message.body and "503" not in message.body
    _clean(mail.outbox)
    assert send_due_warnings(now=later).sent == 0  # once that day
    assert send_due_warnings(now=later + DAY).refresh_failing == 1  # and again the next

    # GitHub is back: the next renewal works, and no more mail.
    let_pause_pass(token_set)
    with monkeypatch.context() as patched:
        _provider_answers(patched, 200, RENEWED)
        assert vault.get_access_token(alice, "github").access_token == "gho_CANARYrenewed6e2f8a0c"
    assert send_due_warnings(now=later + 2 * DAY).sent == 0
    assert len(mail.outbox) == 2


def test_a_dry_run_counts_and_neither_sends_nor_writes(alice, monkeypatch):
    _aged_key(alice)
    _refused_to_renew(alice, monkeypatch)
    mail.outbox.clear()

    counts = send_due_warnings(dry_run=True)
    assert (counts.key_expiring, counts.reconnect_needed) == (1, 1)
    out = io.StringIO()
    call_command("vault_refresh", "--dry-run", stdout=out, stderr=io.StringIO())
    assert "2 warning mail(s) sent." in out.getvalue()

    assert mail.outbox == [] and not WarningSent.objects.exists()


def test_vault_refresh_shows_the_counts_in_json_and_skips_with_no_warnings(alice, monkeypatch):
    _aged_key(alice)
    mail.outbox.clear()

    out = io.StringIO()
    call_command("vault_refresh", "--no-warnings", "--json", stdout=out, stderr=io.StringIO())
    assert json.loads(out.getvalue())["warnings"] is None and mail.outbox == []

    out = io.StringIO()
    call_command("vault_refresh", "--json", stdout=out, stderr=io.StringIO())
    assert json.loads(out.getvalue())["warnings"] == {
        "key_expiring": 1,
        "reconnect_needed": 0,
        "refresh_failing": 0,
        "already_sent": 0,
        "no_address": 0,
        "failed": 0,
    }
    assert len(mail.outbox) == 1

    out = io.StringIO()
    call_command("vault_refresh", stdout=out, stderr=io.StringIO())
    assert out.getvalue().count("\n") == 1  # still one summary line for cron
    assert "Warnings mailed: 0 agent key expiring" in out.getvalue()
    assert "(1 already mailed today, 0 without a verified address, 0 failed)" in out.getvalue()


def test_a_refused_mail_is_retried_by_the_next_run_and_fails_the_command(alice, monkeypatch):
    _aged_key(alice)
    mail.outbox.clear()

    def refused(*args, **kwargs):
        raise ConnectionRefusedError("mail server down (simulated)")

    with monkeypatch.context() as patched:
        patched.setattr("vault.warnings.send_mail", refused)
        out = io.StringIO()
        with pytest.raises(CommandError, match="warning mail"):
            call_command("vault_refresh", stdout=out, stderr=io.StringIO())
        assert "0 without a verified address, 1 failed)" in out.getvalue()
    assert not WarningSent.objects.exists()  # the claim was given back

    assert send_due_warnings().key_expiring == 1 and len(mail.outbox) == 1


def test_one_mail_per_thing_per_day_is_the_databases_rule():
    sign_in(Client(), "github", email="alice@example.com")
    alice = User.objects.get()
    today = timezone.localdate()
    WarningSent.objects.create(kind="key_expiring", subject_key="agent_key:1", user=alice, sent_on=today)
    with pytest.raises(IntegrityError), transaction.atomic():
        WarningSent.objects.create(kind="key_expiring", subject_key="agent_key:1", user=alice, sent_on=today)


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_mail_once():
    sign_in(Client(), "github", email="alice@example.com")
    alice = User.objects.get()
    _aged_key(alice)
    mail.outbox.clear()

    results, failures = run_in_threads(3, send_due_warnings)

    assert failures == []
    assert sum(counts.key_expiring for counts in results) == 1
    assert sum(counts.already_sent for counts in results) == 2
    assert len(mail.outbox) == 1 and WarningSent.objects.count() == 1
