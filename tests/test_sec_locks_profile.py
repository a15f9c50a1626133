"""Issue 20.3: nothing is attached to a profile that a merge retired meanwhile; staff repair leftovers.

A link's callback loaded its user before the merge committed, so without a re-check inside its
own transaction the new identity and its tokens landed on the merged-away profile: it could not
sign in, the account could not be linked anywhere else ("already linked"), ``accounts_unlink``
could not find it and cron kept refreshing its tokens.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import Client
from social_django.models import UserSocialAuth

from accounts import backend_mixins
from accounts.activity_kinds import AccountKind
from accounts.locking import InactiveProfile
from accounts.merging import merge_profiles
from accounts.models import User
from activity.models import Activity
from sandbox import state
from sandbox.state import token_is_active
from vault import agents
from vault import capture as vault_capture
from vault.models import TokenSet

from .flows import provider_page, round_trip, sign_in, start
from .vault_support import expire, stored_tokens

pytestmark = pytest.mark.django_db


@pytest.fixture
def source_client() -> Client:
    client = Client()
    sign_in(client, "github", email="bea@example.com")
    return client


def _profiles() -> tuple[User, User]:
    """(into, source): Ada's profile stays, Bea's is merged into it."""
    sign_in(Client(), "google-oauth2", email="ada@example.com")
    return User.objects.get(email="ada@example.com"), User.objects.get(email="bea@example.com")


def test_a_link_completing_during_a_merge_is_refused_not_attached_to_the_retired_profile(
    source_client, monkeypatch, django_capture_on_commit_callbacks
):
    into, source = _profiles()
    # Bea starts linking a Google account; while the provider round trip runs she (in another
    # tab) confirms merging this profile into Ada's. The callback's request already loaded her.
    _, authorize_url = start(source_client, "google-oauth2")
    callback = provider_page(source_client, authorize_url, email="bea-google@example.com")
    original = backend_mixins.ProviderProfileMixin.pipeline

    def merge_commits_first(self, *args, **kwargs):
        merge_profiles(into=into, source=source, move_identity_ids=None)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(backend_mixins.ProviderProfileMixin, "pipeline", merge_commits_first)
    with django_capture_on_commit_callbacks(execute=True):
        response = source_client.get(callback)

    # The merge ended Bea's sessions, so Django answers 400 "session deleted" rather than 302.
    assert response.status_code in (302, 400)
    assert not UserSocialAuth.objects.filter(user=source).exists()
    assert not UserSocialAuth.objects.filter(details__email="bea-google@example.com").exists()
    assert not TokenSet.objects.filter(provider="google-oauth2", owner_id=source.pk).exists()
    refused = Activity.objects.get(kind=AccountKind.LINK_REFUSED)
    assert refused.data["code"] == "profile_inactive"
    # The account is free: linked to the profile that stayed, it lands there.
    monkeypatch.setattr(backend_mixins.ProviderProfileMixin, "pipeline", original)
    ada = Client()
    sign_in(ada, "google-oauth2", email="ada@example.com")
    round_trip(ada, "google-oauth2", email="bea-google@example.com")
    assert UserSocialAuth.objects.get(details__email="bea-google@example.com").user_id == into.pk


def test_tokens_and_agent_keys_are_never_attached_to_a_retired_profile(source_client):
    into, source = _profiles()
    stale = User.objects.get(pk=source.pk)  # loaded before the merge, as a request would have
    identity = UserSocialAuth.objects.get(user=source)
    merge_profiles(into=into, source=source, move_identity_ids=None)

    with pytest.raises(agents.AgentKeyError, match="merged into another one"):
        agents.create_agent_key(user=stale, name="late bot", providers=["github"])
    assert not agents.AgentKey.objects.filter(user=stale).exists()

    # An identity left on a retired profile (what the race used to produce) gets no tokens.
    UserSocialAuth.objects.filter(pk=identity.pk).update(user=source)
    before = stored_tokens(identity.token_set)
    with pytest.raises(InactiveProfile):
        vault_capture.capture_tokens(
            identity=UserSocialAuth.objects.get(pk=identity.pk), response={"access_token": "x" * 20}
        )
    assert stored_tokens(identity.token_set) == before


def test_vault_refresh_does_not_keep_a_retired_profiles_tokens_alive(source_client, capsys):
    into, source = _profiles()
    identity = UserSocialAuth.objects.get(user=source)
    merge_profiles(into=into, source=source, move_identity_ids=None)
    UserSocialAuth.objects.filter(pk=identity.pk).update(user=source)  # left behind by the old race
    expire(identity.token_set)
    state.reset("github")

    call_command("vault_refresh", "--within", "60")

    assert "Refresh: 0 due" in capsys.readouterr().out
    assert state.refresh_count("github") == 0


def test_staff_repair_an_identity_left_on_a_retired_profile_with_accounts_unlink(
    source_client, capsys, django_capture_on_commit_callbacks
):
    into, source = _profiles()
    identity = UserSocialAuth.objects.get(user=source)
    merge_profiles(into=into, source=source, move_identity_ids=None)
    UserSocialAuth.objects.filter(pk=identity.pk).update(user=source)  # left behind by the old race
    access, refresh = stored_tokens(identity.token_set)

    call_command("accounts_unlink", str(source.pk), str(identity.pk), "--dry-run")
    assert "Would unlink GitHub identity" in capsys.readouterr().out
    assert UserSocialAuth.objects.filter(pk=identity.pk).exists()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("accounts_unlink", str(source.pk), str(identity.pk))
    assert "Unlinked GitHub identity" in capsys.readouterr().out
    assert not UserSocialAuth.objects.filter(pk=identity.pk).exists()
    assert not token_is_active("github", access) and not token_is_active("github", refresh)

    # Bea's GitHub account can now be linked to the profile that stayed.
    ada = Client()
    sign_in(ada, "google-oauth2", email="ada@example.com")
    round_trip(ada, "github", email="bea@example.com")
    assert UserSocialAuth.objects.get(provider="github").user_id == into.pk


def test_staff_repair_an_identity_left_on_a_retired_profile_in_the_admin(
    source_client, django_capture_on_commit_callbacks
):
    into, source = _profiles()
    identity = UserSocialAuth.objects.get(user=source)
    merge_profiles(into=into, source=source, move_identity_ids=None)
    UserSocialAuth.objects.filter(pk=identity.pk).update(user=source)
    staff = User.objects.create_superuser("root", "root@example.com", "pw-for-tests-only-123")
    admin = Client()
    admin.force_login(staff)

    listing = admin.get("/admin/social_django/usersocialauth/").content.decode()
    assert f"merged into {into.pk} (unlink to repair)" in listing
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(
            "/admin/social_django/usersocialauth/",
            {"action": "unlink_selected", "_selected_action": [identity.pk]},
            follow=True,
        )
    assert "Unlinked 1 identity" in response.content.decode()
    assert not UserSocialAuth.objects.filter(pk=identity.pk).exists()
    assert Activity.objects.get(kind=AccountKind.UNLINKED, user=source).actor == staff
