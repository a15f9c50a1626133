"""Suggested linking and merge: email never links by itself, merges need fresh proof of both."""

from __future__ import annotations

import threading
import time

import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from social_django.models import Partial, UserSocialAuth

from accounts import merging
from accounts.activity_kinds import AccountKind
from accounts.models import IdentityDetails, User
from activity.models import Activity
from vault.adapter import VaultAccountsAdapter

from .flows import messages_on, round_trip, sign_in, start

pytestmark = pytest.mark.django_db


def _state(user: User) -> list[tuple]:
    user.refresh_from_db()
    return [
        (user.is_active, user.merged_into_id, user.name, user.email),
        *sorted(UserSocialAuth.objects.filter(user=user).values_list("pk", "provider", "uid")),
    ]


def _separate_profile(email: str, provider: str) -> User:
    """Make a second profile for ``email`` by answering "Create a separate profile"."""
    c = Client()
    result = round_trip(c, provider, email=email)
    if result.location == "/signin/existing-profile/":
        round_trip(c, provider, email=email, separate="1")
    return UserSocialAuth.objects.get(provider=provider, details__email=email).user


# --- 1. the verified-email rule ---------------------------------------------------------------


def test_verified_email_rules_per_provider(settings):
    from social_django.utils import load_backend, load_strategy

    from accounts.oidc.backend import OpenIdConnectAuth

    strategy = load_strategy()
    google = load_backend(strategy, "google-oauth2", None)
    github = load_backend(strategy, "github", None)
    assert google.verified_email({"email": "A.B+x@Example.COM", "email_verified": True}) == (
        "A.B+x@example.com",
        True,
    )
    assert google.verified_email({"email": "a@example.com", "email_verified": "true"})[1] is False
    assert google.verified_email({"email": "a@example.com"})[1] is False
    assert github.verified_email({"email": "pub@example.com", "emails": []}) == ("pub@example.com", False)
    assert github.verified_email(
        {
            "emails": [
                {"email": "x@Example.com", "verified": False, "primary": True},
                {"email": "y@example.com", "verified": True, "primary": False},
            ]
        }
    ) == ("y@example.com", True)
    oidc = OpenIdConnectAuth(strategy)
    settings.SOCIAL_AUTH_OIDC_TRUST_EMAIL_VERIFIED = False
    assert oidc.verified_email({"email": "a@example.com", "email_verified": True})[1] is False
    settings.SOCIAL_AUTH_OIDC_TRUST_EMAIL_VERIFIED = True
    assert oidc.verified_email({"email": "a@example.com", "email_verified": True})[1] is True
    assert oidc.verified_email({"email": "a@example.com", "email_verified": "true"})[1] is False
    # No Unicode folding: a look-alike address is a different address.
    assert (
        google.verified_email({"email": "\u0430lice@example.com", "email_verified": True})[0]
        != "alice@example.com"
    )


# --- 2. suggestion at sign-in -------------------------------------------------------------------


def test_first_sign_in_with_a_known_verified_email_stops_at_a_question(client):
    sign_in(Client(), "github", email="alice@example.com", name="Alice")
    result = round_trip(client, "google-oauth2", email="alice@example.com", name="Alice G")
    assert result.location == "/signin/existing-profile/"
    assert User.objects.count() == 1
    assert not UserSocialAuth.objects.filter(provider="google-oauth2").exists()
    assert "_auth_user_id" not in client.session  # nobody signed in
    assert not Partial.objects.exists()  # nothing of the provider's answer waits in social-auth's table
    assert "access_token" not in str(dict(client.session))
    page = client.get("/signin/existing-profile/")
    html = page.content.decode()
    assert "A profile with alice@example.com already exists" in html
    assert 'data-link-existing="github"' in html
    assert "data-create-separate" in html


def test_sign_in_to_the_existing_profile_then_link(client):
    sign_in(Client(), "github", email="alice@example.com", name="Alice")
    round_trip(client, "google-oauth2", email="alice@example.com")
    _begin, authorize_url = start(client, "github", fresh="1", next="/signin/existing-profile/link/")
    assert "prompt=select_account" in authorize_url  # forced fresh at the provider
    result = round_trip(
        client, "github", email="alice@example.com", fresh="1", next="/signin/existing-profile/link/"
    )
    assert result.location == "/signin/existing-profile/link/"
    assert 'data-link-pending="google-oauth2"' in client.get(result.location).content.decode()
    round_trip(client, "google-oauth2", email="alice@example.com", next="/settings/connections/")
    alice = User.objects.get()
    assert sorted(alice.social_auth.values_list("provider", flat=True)) == ["github", "google-oauth2"]
    assert client.get("/signin/existing-profile/").headers["Location"] == "/"  # nothing pending any more


def test_create_a_separate_profile(client):
    sign_in(Client(), "github", email="alice@example.com")
    round_trip(client, "google-oauth2", email="alice@example.com")
    result = round_trip(client, "google-oauth2", email="alice@example.com", separate="1")
    assert result.location == "/settings/connections/"
    assert User.objects.count() == 2
    google_user = UserSocialAuth.objects.get(provider="google-oauth2").user
    assert not google_user.social_auth.filter(provider="github").exists()


def test_separate_flag_without_the_question_does_not_skip_it(client):
    sign_in(Client(), "github", email="alice@example.com")
    result = round_trip(client, "google-oauth2", email="alice@example.com", separate="1")
    assert result.location == "/signin/existing-profile/"


# --- pre-hijacking classes and nOAuth -----------------------------------------------------------


def _victim_signs_up(client: Client) -> User:
    result = round_trip(client, "google-oauth2", email="victim@example.com", name="Victim")
    assert result.location == "/settings/connections/"  # no suggestion: nothing verified matched
    return UserSocialAuth.objects.get(provider="google-oauth2", details__email="victim@example.com").user


def test_classic_federated_merge_is_impossible():
    attacker = Client()
    # The attacker registers first with the victim's address, which GitHub never verified.
    round_trip(attacker, "github", email="victim@example.com", verified=False)
    attacker_profile = User.objects.get()
    victim = _victim_signs_up(Client())
    assert victim.pk != attacker_profile.pk
    assert list(attacker_profile.social_auth.values_list("provider", flat=True)) == ["github"]
    assert "data-suggestion" not in attacker.get("/settings/connections/").content.decode()


def test_unexpired_session_of_a_merged_profile_is_ended():
    victim_client, attacker_client = Client(), Client()
    sign_in(victim_client, "github", email="victim@example.com")
    victim = User.objects.get()
    other = _separate_profile("victim-old@example.com", "google-oauth2")
    sign_in(attacker_client, "google-oauth2", email="victim-old@example.com")  # a session left open
    assert attacker_client.get("/settings/connections/").status_code == 200
    merging.merge_profiles(into=victim, source=other, move_identity_ids=None, actor=None)
    response = attacker_client.get("/settings/connections/")
    assert response.status_code == 302  # signed out: the old session is gone


def test_trojan_identifier_gives_nothing():
    attacker = Client()
    round_trip(attacker, "github", email="victim@example.com", verified=False)
    round_trip(attacker, "google-oauth2", email="attacker@example.com")  # the trojan second identity
    attacker_profile = User.objects.get()
    victim = _victim_signs_up(Client())
    assert set(victim.social_auth.values_list("provider", flat=True)) == {"google-oauth2"}
    assert attacker_profile.social_auth.count() == 2
    # The trojan never becomes a bridge: neither side is offered a link or a merge.
    assert "data-suggestion" not in attacker.get("/settings/connections/").content.decode()
    victim_client = Client()
    victim_client.force_login(victim)
    assert "data-suggestion" not in victim_client.get("/settings/connections/").content.decode()


def test_unexpired_email_change_is_not_trusted(capsys):
    attacker = Client()
    round_trip(attacker, "github", email="victim@example.com", verified=False)
    _victim_signs_up(Client())
    call_command("accounts_suggest_links", "--json")
    assert '"count": 0' in capsys.readouterr().out


def test_non_verifying_identity_provider_claim_is_not_trusted(settings, rf):
    from social_django.utils import load_strategy

    from accounts.flow_state import AuthFlow
    from accounts.oidc.backend import OpenIdConnectAuth
    from accounts.pipeline import suggest_existing_profile

    sign_in(Client(), "github", email="victim@example.com")
    settings.SOCIAL_AUTH_OIDC_TRUST_EMAIL_VERIFIED = False
    request = rf.get("/complete/oidc/")
    request.session = {}
    strategy = load_strategy(request)
    backend = OpenIdConnectAuth(strategy)
    outcome = suggest_existing_profile(
        strategy,
        backend,
        uid="attacker-sub",
        response={"email": "victim@example.com", "email_verified": True},
        flow=AuthFlow(user_id=None, purpose="signin", next="/"),
        user=None,
        social=None,
    )
    assert outcome is None  # no question asked: the claim is not trusted, so nothing is suggested


def test_noauth_unverified_email_for_someone_else_gets_no_access(client):
    victim_client = Client()
    sign_in(victim_client, "github", email="victim@example.com")
    victim = User.objects.get()
    result = round_trip(client, "google-oauth2", email="victim@example.com", verified=False)
    assert result.location == "/settings/connections/"  # a separate, new profile
    attacker_profile = User.objects.exclude(pk=victim.pk).get()
    assert client.get("/settings/connections/").context["user"] == attacker_profile
    assert victim.social_auth.count() == 1
    assert "data-suggestion" not in client.get("/settings/connections/").content.decode()


# --- 3. suggestion when signed in ----------------------------------------------------------------


def test_connections_page_suggests_without_revealing_the_other_profile(client):
    sign_in(client, "github", email="alice@example.com")
    other = _separate_profile("alice@example.com", "google-oauth2")
    other.name = "Secret Name"
    other.save()
    html = client.get("/settings/connections/").content.decode()
    assert "data-suggestion" in html
    assert "Another profile signed in with Google" in html
    assert "Secret Name" not in html


# --- 4. merge ------------------------------------------------------------------------------------


def _merge_ready(client: Client) -> tuple[User, User]:
    sign_in(client, "github", email="alice@example.com", name="Alice A")
    alice = User.objects.get()
    other = _separate_profile("alice@example.com", "google-oauth2")
    response = client.post("/settings/merge/start/")
    assert response.headers["Location"].startswith("/settings/reauthenticate/")
    result = round_trip(
        client, "github", email="alice@example.com", purpose="reauth", next="/settings/merge/prove/"
    )
    assert result.location == "/settings/merge/prove/"
    assert 'data-merge-prove="google-oauth2"' in client.get("/settings/merge/prove/").content.decode()
    result = round_trip(
        client,
        "google-oauth2",
        email="alice@example.com",
        purpose="merge_proof",
        next="/settings/merge/review/",
    )
    assert result.location == "/settings/merge/review/"
    return alice, other


def test_merge_after_fresh_proof_of_both(client, django_capture_on_commit_callbacks):
    alice, other = _merge_ready(client)
    review = client.get("/settings/merge/review/").content.decode()
    moved = other.social_auth.get()
    assert f'value="{moved.pk}"' in review and "checked" in review
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/settings/merge/confirm/", {"identity": [moved.pk]})
    assert response.headers["Location"] == "/settings/connections/"
    alice.refresh_from_db()
    other.refresh_from_db()
    assert sorted(alice.social_auth.values_list("provider", flat=True)) == ["github", "google-oauth2"]
    assert alice.name == "Alice A"
    assert (other.is_active, other.merged_into_id) == (False, alice.pk)
    assert Activity.objects.filter(user=alice, kind=AccountKind.MERGED).exists()
    assert Activity.objects.filter(user=other, kind=AccountKind.MERGED).exists()
    assert {m.subject for m in mail.outbox} >= {"Another profile was merged into yours"}
    assert any("Merged the other profile" in m for m in messages_on(client))
    # Its token set moved too, re-encrypted for its new owner: Alice gets a working token.
    from sandbox import state as sandbox_state
    from vault import get_access_token

    token = get_access_token(alice, "google-oauth2")
    assert sandbox_state.token_is_active("google", token.access_token)
    # The merged identity now signs in to Alice's profile.
    c = Client()
    sign_in(c, "google-oauth2", email="alice@example.com")
    assert c.get("/settings/connections/").context["user"] == alice


def test_unticked_identities_are_dropped_and_their_tokens_revoked(client, django_capture_on_commit_callbacks):
    from sandbox import state as sandbox_state
    from vault.models import TokenSet

    sign_in(client, "github", email="alice@example.com", name="Alice A")
    alice = User.objects.get()
    other = _separate_profile("alice@example.com", "google-oauth2")
    other_client = Client()
    sign_in(other_client, "google-oauth2", email="alice@example.com")
    round_trip(other_client, "github", email="alice-other@example.com")  # a second account there
    dropped = other.social_auth.get(provider="github")
    moved = other.social_auth.get(provider="google-oauth2")
    dropped_set = TokenSet.objects.get(identity=dropped)
    dropped_token = dropped_set.read_access_token()
    assert sandbox_state.token_is_active("github", dropped_token)

    client.post("/settings/merge/start/")
    round_trip(client, "github", email="alice@example.com", purpose="reauth", next="/settings/merge/prove/")
    round_trip(client, "google-oauth2", email="alice@example.com", purpose="merge_proof")
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/settings/merge/confirm/", {"identity": [moved.pk]})
    assert not UserSocialAuth.objects.filter(pk=dropped.pk).exists()
    assert UserSocialAuth.objects.get(pk=moved.pk).user_id == alice.pk
    assert not sandbox_state.token_is_active("github", dropped_token)  # revoked at the provider
    assert other_client.get("/settings/connections/").status_code == 302  # its sessions ended


def test_merge_form_with_an_unproven_identity_is_refused(client):
    alice, other = _merge_ready(client)
    extra = UserSocialAuth.objects.create(user=other, provider="github", uid="424242")
    IdentityDetails.objects.create(identity=extra, account_name="unproven")
    before = _state(alice), _state(other)
    response = client.post(
        "/settings/merge/confirm/",
        {"identity": [other.social_auth.get(provider="google-oauth2").pk, extra.pk]},
    )
    assert response.headers["Location"] == "/settings/merge/review/"
    assert (_state(alice), _state(other)) == before
    assert any("only move accounts you just signed in with" in m for m in messages_on(client))
    review = client.get("/settings/merge/review/").content.decode()
    assert f'value="{extra.pk}" id="merge-identity-{extra.pk}" disabled' in review


def test_merge_proof_with_an_unknown_account_links_nothing(client):
    sign_in(client, "github", email="alice@example.com")
    client.post("/settings/merge/start/")
    round_trip(client, "github", email="alice@example.com", purpose="reauth", next="/settings/merge/prove/")
    round_trip(client, "google-oauth2", email="nobody@example.com", purpose="merge_proof")
    assert not UserSocialAuth.objects.filter(provider="google-oauth2").exists()
    assert any("not linked to any profile" in m for m in messages_on(client))


def test_merge_proof_without_a_fresh_sign_in_here_is_refused(client):
    sign_in(client, "github", email="alice@example.com")
    other = _separate_profile("alice@example.com", "google-oauth2")
    client.post("/settings/merge/start/")  # but never confirms it's them on this profile
    round_trip(client, "google-oauth2", email="alice@example.com", purpose="merge_proof")
    assert client.get("/settings/merge/review/").status_code == 302
    assert other.social_auth.count() == 1
    assert User.objects.get(pk=other.pk).is_active


class ExplodingAdapter(VaultAccountsAdapter):
    """The site's adapter, failing after the vault's part of a merge has run."""

    def profiles_merging(self, **kwargs) -> None:
        super().profiles_merging(**kwargs)
        raise RuntimeError("injected fault")


def test_fault_in_the_middle_of_a_merge_changes_nothing(client, settings):
    alice, other = _merge_ready(client)
    before = _state(alice), _state(other)
    settings.ACCOUNTS_ADAPTER = f"{__name__}.ExplodingAdapter"
    with pytest.raises(RuntimeError, match="injected fault"):
        merging.merge_profiles(into=alice, source=other, move_identity_ids=None, proven_identity_ids=None)
    assert (_state(alice), _state(other)) == before
    assert not Activity.objects.filter(kind=AccountKind.MERGED).exists()


# --- 5. concurrency ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_opposite_merges_at_once_one_wins_one_is_refused():
    a = User.objects.create_user("a", "a@example.com")
    b = User.objects.create_user("b", "b@example.com")
    for user, uid in ((a, "1"), (b, "2")):
        IdentityDetails.objects.create(
            identity=UserSocialAuth.objects.create(user=user, provider="github", uid=uid)
        )
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def run(into, source):
        barrier.wait()
        try:
            merging.merge_profiles(into=into, source=source, move_identity_ids=None)
            outcomes.append("merged")
        except merging.MergeError as error:
            outcomes.append(f"refused: {error}")
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=pair) for pair in ((a, b), (b, a))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(o.split(":")[0] for o in outcomes) == ["merged", "refused"]
    assert any("already merged" in o for o in outcomes)
    assert UserSocialAuth.objects.count() == 2
    assert User.objects.filter(is_active=True).count() == 1
    winner = User.objects.get(is_active=True)
    assert winner.social_auth.count() == 2


@pytest.mark.django_db(transaction=True)
def test_merge_racing_a_disconnect_loses_nothing():
    from accounts import unlinking
    from accounts.exceptions import LinkingError

    a = User.objects.create_user("a", "a@example.com")
    b = User.objects.create_user("b", "b@example.com")
    b.set_password("b-password-123456")
    b.save()
    IdentityDetails.objects.create(identity=UserSocialAuth.objects.create(user=a, provider="github", uid="1"))
    target = UserSocialAuth.objects.create(user=b, provider="google-oauth2", uid="2")
    IdentityDetails.objects.create(identity=target)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def merge():
        barrier.wait()
        try:
            merging.merge_profiles(into=a, source=b, move_identity_ids=[target.pk])
            outcomes.append("merged")
        except merging.MergeError:
            outcomes.append("merge refused")
        except Exception as error:  # report, so the assertion shows what went wrong
            outcomes.append(f"merge crashed: {error!r}")
        finally:
            connection.close()

    def unlink():
        barrier.wait()
        try:
            unlinking.unlink_identity(user=b, identity_id=target.pk)
            outcomes.append("unlinked")
        except LinkingError:
            outcomes.append("unlink refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=merge), threading.Thread(target=unlink)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) in (["merge refused", "unlinked"], ["merged", "unlink refused"])
    if "merged" in outcomes:
        assert UserSocialAuth.objects.get(pk=target.pk).user_id == a.pk
    else:
        assert not UserSocialAuth.objects.filter(pk=target.pk).exists()
        assert User.objects.get(pk=b.pk).is_active


# --- 6. staff ------------------------------------------------------------------------------------


def test_staff_suggest_and_merge_commands(capsys, monkeypatch):
    sign_in(Client(), "github", email="alice@example.com")
    alice = User.objects.get()
    other = _separate_profile("alice@example.com", "google-oauth2")
    staff = User.objects.create_superuser("root", "root@example.com", "pw-123-for-tests")
    call_command("accounts_suggest_links")
    out = capsys.readouterr().out
    assert "alice@example.com" in out and f"profiles {alice.pk}, {other.pk}" in out
    call_command("accounts_merge", str(alice.pk), str(other.pk), "--dry-run", "--actor", "root")
    out = capsys.readouterr().out
    assert "move  identity" in out and "Dry run" in out
    assert User.objects.get(pk=other.pk).is_active
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)  # a person at a terminal answers
    monkeypatch.setattr("builtins.input", lambda prompt: "no")
    with pytest.raises(CommandError, match="confirmation was not given"):
        call_command("accounts_merge", str(alice.pk), str(other.pk), "--actor", "root")
    assert User.objects.get(pk=other.pk).is_active
    with pytest.raises(CommandError, match="not a staff member"):
        call_command("accounts_merge", str(alice.pk), str(other.pk), "--actor", str(other.pk), "--yes")
    call_command("accounts_merge", str(alice.pk), str(other.pk), "--actor", "root", "--yes")
    assert User.objects.get(pk=other.pk).merged_into_id == alice.pk
    record = Activity.objects.get(user=alice, kind=AccountKind.MERGED)
    assert record.actor == staff
    with pytest.raises(CommandError, match="already merged"):
        call_command("accounts_merge", str(alice.pk), str(other.pk), "--actor", "root", "--yes")


def _two_profiles_and_staff(client: Client) -> tuple[User, User, User]:
    """Alice's profile, a separate one with her email, and a superuser signed in on ``client``."""
    sign_in(Client(), "github", email="alice@example.com")
    alice = User.objects.get()
    other = _separate_profile("alice@example.com", "google-oauth2")
    staff = User.objects.create_superuser("root", "root@example.com", "pw-123-for-tests")
    client.force_login(staff)
    return alice, other, staff


def test_admin_merge_action_asks_then_merges(client):
    alice, other, staff = _two_profiles_and_staff(client)
    page = client.post(
        "/admin/accounts/user/", {"action": "merge_profiles", "_selected_action": [alice.pk, other.pk]}
    )
    assert page.status_code == 200
    assert "Choose which profile stays" in page.content.decode()
    assert User.objects.get(pk=other.pk).is_active
    client.post(
        "/admin/accounts/user/",
        {
            "action": "merge_profiles",
            "_selected_action": [alice.pk, other.pk],
            "into": alice.pk,
            "confirm": "yes",
        },
    )
    assert User.objects.get(pk=other.pk).merged_into_id == alice.pk
    assert Activity.objects.get(user=alice, kind=AccountKind.MERGED).actor == staff


def test_merge_form_with_a_third_users_identity_moves_nothing(client):
    alice, other = _merge_ready(client)
    sign_in(Client(), "github", email="carol@example.com")
    carol = User.objects.get(email="carol@example.com")
    carols = carol.social_auth.get()
    before = _state(alice), _state(other), _state(carol)
    response = client.post(
        "/settings/merge/confirm/",
        {"identity": [other.social_auth.get(provider="google-oauth2").pk, carols.pk]},
    )
    assert response.status_code == 302
    assert (_state(alice), _state(other), _state(carol)) == before
    assert UserSocialAuth.objects.get(pk=carols.pk).user_id == carol.pk
    assert not Activity.objects.filter(kind=AccountKind.MERGED).exists()


def test_a_merge_recorded_as_done_by_someone_must_be_done_by_staff(client):
    sign_in(Client(), "github", email="alice@example.com")
    alice = User.objects.get()
    other = _separate_profile("alice@example.com", "google-oauth2")
    before = _state(alice), _state(other)
    with pytest.raises(merging.MergeError, match="not a staff member"):
        merging.merge_profiles(into=alice, source=other, move_identity_ids=None, actor=alice)
    assert (_state(alice), _state(other)) == before and User.objects.get(pk=other.pk).is_active


def test_admin_merge_action_needs_a_recent_sign_in(client):
    alice, other, _staff = _two_profiles_and_staff(client)
    session = client.session
    session["auth_at"] = int(time.time()) - 3600
    session.save()
    response = client.post(
        "/admin/accounts/user/",
        {
            "action": "merge_profiles",
            "_selected_action": [alice.pk, other.pk],
            "into": alice.pk,
            "confirm": "yes",
        },
    )
    assert response.headers["Location"].startswith("/settings/reauthenticate/?next=")
    assert User.objects.get(pk=other.pk).is_active and other.social_auth.count() == 1
