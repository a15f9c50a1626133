"""Issue 14 (3), pages part: what a person reads says "Google", describes scopes, and names the zone.

Each page is rendered for real (sign-ins through the sandbox), its tags and attributes stripped, and
the text checked: no backend name (``google-oauth2``; lower-case ``github``), no "token set", no
"tombstone", no raw Google scope URL, and every time followed by "UTC". The machine names stay where
machines read them (``data-provider``, form values, URLs, ``title``).
"""

from __future__ import annotations

import io
import json
import re
from html import unescape

import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse
from social_django.models import UserSocialAuth

from accounts.models import User
from accounts.scope_words import scope_phrase, scope_text
from accounts.templatetags.plain_words import scope_list, scope_words, when_text
from vault import agents, provider_calls
from vault.models import AgentKey, ConnectRequest, TokenSet

from .flows import round_trip, sign_in
from .vault_support import expire, http_status, patch_transport

pytestmark = pytest.mark.django_db

DRIVE = "https://www.googleapis.com/auth/drive.readonly"
INTERNAL = ("google-oauth2", "token set", "tombstone", "did not list them", "googleapis.com", "as requested")


def visible_text(html: str) -> str:
    """What a person reads: the text without tags, attributes, scripts or comments."""
    html = re.sub(r"(?is)<(script|style)\b.*?</\1\s*>", " ", html)
    html = re.sub(r"(?s)<!--.*?-->", " ", html)
    return " ".join(unescape(re.sub(r"(?s)<[^>]*>", " ", html)).split())


def assert_plain(html: str) -> str:
    text = visible_text(html)
    for word in INTERNAL:
        assert word not in text.lower(), (word, text)
    assert not re.search(r"\bgithub\b", text), text  # the backend name; people read "GitHub"
    for clock in re.finditer(r"\b\d{1,2}:\d{2}\b", text):
        assert text[clock.end() : clock.end() + 4] == " UTC", text[clock.start() - 20 : clock.end() + 10]
    return text


def page(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.content.decode()


@pytest.fixture
def alice(client) -> User:
    """Alice, signed in with GitHub and with Google linked (so both have tokens)."""
    sign_in(client, "github", email="alice@example.com", name="Alice")
    round_trip(client, "google-oauth2", email="alice@example.com", name="Alice")
    return User.objects.get(email="alice@example.com")


@pytest.fixture
def key(alice) -> tuple[AgentKey, str]:
    row, plaintext = agents.create_agent_key(
        user=alice,
        name="helper bot",
        providers=["github", "google-oauth2"],
        scopes={"google-oauth2": [DRIVE, "openid"]},
        whole_grant=True,
    )
    return row, plaintext


def _api(key: str, path: str, body: dict) -> tuple[int, dict]:
    response = Client().post(
        path, json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}"
    )
    return response.status_code, response.json()


def test_scope_words_describe_known_scopes_and_keep_the_raw_name_on_hover():
    assert str(scope_words(DRIVE)) == (
        f'<span class="scope" title="{DRIVE}">See your Google Drive files '
        '<small class="muted">(drive.readonly)</small></span>'
    )
    assert scope_phrase("repo").startswith("Read and change all your GitHub repositories")
    assert scope_phrase("https://www.googleapis.com/auth/userinfo.email") == scope_phrase("email")
    # Unknown: the raw name, escaped, never a guess.
    assert str(scope_words("x<y")) == '<code class="scope">x&lt;y</code>' and scope_phrase("x<y") == ""
    assert scope_text("read:user") == "See your GitHub profile (read:user)" and scope_text("odd") == "odd"
    assert "; " in str(scope_list(["repo", "gist"]))


def test_sign_in_and_reauthenticate_pages_say_provider_titles(client, alice):
    anonymous = page(Client(), "/")
    assert "Continue with Google" in assert_plain(anonymous) and 'data-provider="google-oauth2"' in anonymous
    reauth = page(client, reverse("accounts:reauthenticate"))
    assert "Continue with GitHub" in assert_plain(reauth) and 'data-reauth="github"' in reauth


def test_connections_page_titles_scope_words_and_times_with_utc(client, alice):
    html = page(client, f"/settings/connections/?connect=google-oauth2&scope={DRIVE}")
    text = assert_plain(html)
    assert "Continue to Google" in text and "See your Google Drive files (drive.readonly)" in text
    # The machine names stay where machines read them.
    assert 'data-provider="google-oauth2"' in html and f'name="scope" value="{DRIVE}"' in html
    # Google's granted scopes are described, the raw URL on hover.
    assert 'title="https://www.googleapis.com/auth/userinfo.email">See your email address' in html
    assert 'title="read:user">See your GitHub profile' in html
    google = UserSocialAuth.objects.get(provider="google-oauth2")
    assert when_text(google.details.linked_at) in text and " UTC" in when_text(google.details.linked_at)
    assert html.count("<time datetime=") >= 4  # linked, last sign-in, token expiry, for each account


def test_token_status_without_a_reported_list_says_so_plainly(client, alice):
    TokenSet.objects.filter(provider="github").update(scopes_reported=False)
    text = assert_plain(page(client, "/settings/connections/"))
    assert "what this site asked for: GitHub did not confirm what it granted" in text


def test_disconnect_confirm_and_merge_prove_pages(client, alice):
    google = UserSocialAuth.objects.get(provider="google-oauth2")
    text = assert_plain(page(client, reverse("accounts:disconnect", args=[google.pk])))
    assert "Disconnect Google account" in text and "revoked at Google" in text

    client.post(reverse("accounts:merge_start"))
    round_trip(client, "github", email="alice@example.com", purpose="reauth", next="/settings/merge/prove/")
    html = page(client, reverse("accounts:merge_prove"))
    assert "Sign in with Google" in assert_plain(html) and 'data-merge-prove="google-oauth2"' in html


def test_agents_page_and_history_show_titles_scope_words_and_utc(client, alice, key):
    row, plaintext = key
    status, _token = _api(plaintext, "/api/v1/token", {"connection": "google-oauth2", "scopes": ["openid"]})
    assert status == 200
    assert _api(plaintext, "/api/v1/token", {"connection": "github"})[0] == 200
    old, _ = agents.create_agent_key(user=alice, name="old bot", providers=["github"])
    agents.revoke_agent_key(user=alice, key_id=old.pk)

    html = page(client, "/settings/agents/")
    text = assert_plain(html)
    assert "May use GitHub, Google; Google only: See your Google Drive files (drive.readonly)" in text
    assert f'title="{DRIVE}"' in html
    assert when_text(row.expires_at) in text and when_text(old.revoked_at) in text
    assert 'value="google-oauth2"' in html  # the form's values stay machine names

    history = page(client, reverse("vault:agent_history", args=[row.pk]))
    text = assert_plain(history)
    assert "Google" in text and "GitHub" in text and "UTC" in text and "Confirm who you are" in text
    for url in (reverse("vault:agent_revoke", args=[row.pk]), reverse("vault:agent_rename", args=[row.pk])):
        assert "helper bot" in assert_plain(page(client, url))


def test_connect_page_describes_what_the_agent_asks_for(client, alice, key):
    status, created = _api(
        key[1], "/api/v1/connect-requests", {"connection": "google-oauth2", "scopes": [DRIVE]}
    )
    assert status == 201
    html = page(client, f"/connect/{created['id']}/")
    text = assert_plain(html)
    assert "asks you to connect Google" in text and "See your Google Drive files" in text
    request = ConnectRequest.objects.get(pk=created["id"])
    assert f"expires on {when_text(request.expires_at)}" in text
    assert f'name="scope" value="{DRIVE}"' in html and f'title="{DRIVE}"' in html
    # Back from Google without the scope: the confirm page says what is missing, in words.
    text = assert_plain(page(client, f"/connect/{created['id']}/done/"))
    assert "Google did not give what the agent asked for" in text and "See your Google Drive files" in text


def test_mails_use_titles_scope_words_and_times_with_utc(client, django_capture_on_commit_callbacks):
    sign_in(client, "github", email="alice@example.com")
    alice = User.objects.get()
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        round_trip(client, "google-oauth2", email="alice@example.com")
        row, _ = agents.create_agent_key(
            user=alice, name="bot", providers=["google-oauth2"], scopes={"google-oauth2": [DRIVE]}
        )
    linked, created = mail.outbox
    assert linked.subject == "A Google account was linked to your profile"
    assert "Your Google account named" in linked.body
    assert (
        "It may get tokens for: Google. From Google only: See your Google Drive files (drive.readonly)."
        in (created.body)
    )
    assert f"It expires on {when_text(row.expires_at)}." in created.body and " UTC." in created.body
    for message in (linked, created):
        for word in INTERNAL:
            assert word not in message.body.lower()


@pytest.mark.parametrize(
    "path",
    [
        "/admin/social_django/usersocialauth/",
        "/admin/vault/tokenset/",
        "/admin/vault/agentkey/",
        "/admin/vault/connectrequest/",
        "/admin/accounts/identitydetails/",
    ],
)
def test_admin_lists_and_details_show_titles_and_times_with_utc(client, staff, path):
    _row, plaintext = agents.create_agent_key(
        user=staff, name="bot", providers=["github", "google-oauth2"], scopes={"google-oauth2": [DRIVE]}
    )
    assert (
        _api(plaintext, "/api/v1/connect-requests", {"connection": "google-oauth2", "scopes": [DRIVE]})[0]
        == 201
    )
    html = page(client, path)
    # The site's part of the page: the title, the filters and the table. The breadcrumbs and the
    # result count still use the models' own names (a model change with a migration; see the report).
    content = re.sub(r'(?s)<p class="paginator">.*?</p>', "", html.split('<div id="content"', 1)[1])
    text = assert_plain(content)
    assert "Google" in text and ("GitHub" in text or "connectrequest" in path)
    if "usersocialauth" in path or "tokenset" in path or "connectrequest" in path:
        assert "?provider=google-oauth2" in html  # the filter's link keeps the machine name
    detail = re.search(rf'href="({path}[^"]+/change/[^"]*)"', html)
    assert detail, html
    detail_html = page(client, unescape(detail.group(1)))
    assert_plain(detail_html.split('<div id="content"', 1)[1])


def test_commands_print_titles_and_words_not_codes(staff, monkeypatch):
    out = io.StringIO()
    call_command("accounts_identities", str(staff.pk), stdout=out)
    assert "GitHub" in out.getvalue() and "Google" in out.getvalue() and "google-oauth2" not in out.getvalue()
    out = io.StringIO()
    call_command("accounts_identities", str(staff.pk), "--json", stdout=out)
    assert {row["provider"] for row in json.loads(out.getvalue())["identities"]} == {
        "github",
        "google-oauth2",
    }

    out = io.StringIO()
    call_command("vault_status", stdout=out)
    assert (
        out.getvalue().startswith("Stored tokens: 2 account(s) (2 linked")
        and "token set" not in out.getvalue()
    )

    monkeypatch.setattr(provider_calls, "RETRY_BACKOFF", (0.0, 0.0))
    expire(TokenSet.objects.get(provider="github"))
    patch_transport(
        monkeypatch,
        when=lambda method, url: method == "POST" and "access_token" in url,
        answer=http_status(503),
    )
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("vault_refresh", stdout=out, stderr=io.StringIO())
    assert "failed: 1 provider unavailable" in out.getvalue() and "provider_unavailable" not in out.getvalue()


def test_admin_user_pages_show_identities_by_title_and_dates_with_utc(client, staff):
    listing = page(client, "/admin/accounts/user/")
    text = assert_plain(
        re.sub(r'(?s)<p class="paginator">.*?</p>', "", listing.split('<div id="content"', 1)[1])
    )
    assert when_text(staff.date_joined) in text
    html = page(client, f"/admin/accounts/user/{staff.pk}/change/")
    # Django's own permission picker names every model (its "token set" too): the site's parts are
    # the dates and the identities inline.
    dates = html.split("Important dates", 1)[1].split("</fieldset>", 1)[0]
    assert when_text(staff.date_joined) in assert_plain(dates)
    inline = assert_plain(html.split('id="social_auth-group"', 1)[1])
    assert "GitHub" in inline and "Google" in inline and "Merged into" not in inline

    old = User.objects.create(username="old-profile", merged_into=staff, is_active=False)
    merged = page(client, f"/admin/accounts/user/{old.pk}/change/").split("field-merged_into_profile", 1)[1]
    text = assert_plain(merged.split("</fieldset>", 1)[0])
    assert f"profile {staff.pk} (this profile was merged into it" in text
