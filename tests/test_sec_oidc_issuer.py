"""Issue 20.1: an OpenID Connect identity is bound to the issuer it was made under.

The operator's moves are played out in one test each, changing the provider settings between
sign-ins as a restart would: re-pointing ``corp`` at another issuer (a tenant move), and removing
``corp`` and adding the name back later for another issuer. A stranger at the new issuer whose
``sub`` equals the person's never lands in the person's profile; ``manage.py check`` says which
identities are concerned until staff move them explicitly (``accounts_oidc_issuer``) or remove
them; a removed provider's identities show "not available", can be removed by their owner
(revocation impossible, said plainly), and ``vault_refresh`` skips them with one summary line.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.apps import apps as django_apps
from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError
from social_django.models import UserSocialAuth

from accounts.models import IdentityDetails, User
from accounts.oidc import checks as oidc_checks
from activity.models import Activity
from vault.agents import create_agent_key
from vault.models import TokenSet

from . import flows, sec_oidc_helpers
from .sec_oidc_helpers import identities, point_named_at, refused_on_page, remove_backend, round_trip
from .vault_support import expire

pytestmark = pytest.mark.django_db

fake_ops = sec_oidc_helpers.fake_ops
refusals = sec_oidc_helpers.refusals

ROOT = Path(__file__).resolve().parent.parent
ISSUER_A = "https://tenant-a.example.test"
ISSUER_B = "https://tenant-b.example.test"
SUB = "248289761001"  # the person's sub at A, and (by chance or on purpose) a stranger's at B
CORP = "accounts.oidc.named.OIDC_corp"


@pytest.fixture
def tenants(settings, fake_ops):
    a = fake_ops.add(ISSUER_A, sub=SUB, client_id="site-at-a", userinfo={"email": "alice@a.example"})
    b = fake_ops.add(ISSUER_B, sub=SUB, client_id="site-at-b", userinfo={"email": "mallory@b.example"})
    return a, b


def person_signs_in_and_links_github(client, a):
    """The person: signs in with corp at issuer A, then links GitHub (sandbox)."""
    assert round_trip(client, a, "corp").headers["Location"] == "/settings/connections/"
    flows.sign_in(client, "github", email="alice@example.com")
    person = User.objects.get()
    assert sorted(UserSocialAuth.objects.filter(user=person).values_list("provider", flat=True)) == [
        "corp",
        "github",
    ]
    return person


def check_errors(tags=("oidc_identities",)) -> str:
    with pytest.raises(SystemCheckError) as failed:
        call_command("check", tags=list(tags))
    return str(failed.value)


def signed_in_user_id(client):
    return client.session.get("_auth_user_id")


# --- a provider re-pointed at another issuer ----------------------------------------------------------


def test_repointed_provider_never_lets_the_new_issuers_subject_in(client, settings, tenants, refusals):
    a, b = tenants
    point_named_at(settings, "corp", a)
    person = person_signs_in_and_links_github(client, a)
    corp = UserSocialAuth.objects.get(provider="corp")
    client.post("/logout/")
    before = identities()

    # The operator moves corp to tenant B (a restart with OIDC_CORP_ENDPOINT changed).
    point_named_at(settings, "corp", b)

    # The stranger at B with the same sub presses "Continue with Corp": refused, nothing changed.
    response = round_trip(client, b, "corp")
    assert signed_in_user_id(client) is None, "the stranger landed in the person's profile"
    shown = refused_on_page(client, response, code="issuer_mismatch")
    assert "different sign-in service" in shown[0]
    assert [e.code for e in refusals] == ["issuer_mismatch"]
    assert identities() == before and User.objects.count() == 1
    assert b.count("/me") == 0  # refused before UserInfo

    # Someone signed in elsewhere cannot link it either.
    flows.sign_in(client, "google-oauth2", email="mallory@example.com")
    mallory = User.objects.exclude(pk=person.pk).get()
    response = round_trip(client, b, "corp")
    refused_on_page(client, response, code="issuer_mismatch", landing="/settings/connections/")
    assert not UserSocialAuth.objects.filter(user=mallory, provider="corp").exists()
    assert UserSocialAuth.objects.get(provider="corp").user_id == person.pk

    # manage.py check refuses to start, naming the identities concerned (counts, ids, no secrets).
    text = check_errors()
    assert "oidc.E020" in text and "'corp'" in text
    assert f"1 under {ISSUER_A} (ids {corp.pk})" in text and ISSUER_B in text
    assert f"accounts_oidc_issuer corp --to {ISSUER_B}" in text
    assert b.client_secret not in text and a.client_secret not in text
    with pytest.raises(Exception, match=r"oidc\.E020"):
        oidc_checks.validate_at_startup()
    # Moved back (the operator's mistake undone), everything is as before.
    point_named_at(settings, "corp", a)
    call_command("check", tags=["oidc_identities"])
    assert IdentityDetails.objects.get(identity=corp).issuer == ISSUER_A


def test_staff_move_identities_to_the_new_issuer_explicitly(client, settings, tenants):
    a, b = tenants
    point_named_at(settings, "corp", a)
    person = person_signs_in_and_links_github(client, a)
    client.post("/logout/")
    point_named_at(settings, "corp", b)
    corp = UserSocialAuth.objects.get(provider="corp")

    # Bad input: one readable line, non-zero exit (CommandError), nothing changed.
    for args, expected in [
        (["corp", "--to", "https://typo.example.test"], f"configured for the issuer {ISSUER_B}"),
        (["okta", "--to", ISSUER_B], "'okta' is not a configured OpenID Connect provider"),
    ]:
        with pytest.raises(CommandError) as failed:
            call_command("accounts_oidc_issuer", *args)
        assert expected in str(failed.value) and "\n" not in str(failed.value)
    assert IdentityDetails.objects.get(identity=corp).issuer == ISSUER_A

    out = io.StringIO()
    call_command("accounts_oidc_issuer", "corp", "--to", ISSUER_B, "--dry-run", stdout=out)
    assert out.getvalue().splitlines() == [
        f"Would bind 1 Corp identities to {ISSUER_B} (1 from {ISSUER_A}).",
        "Dry run: nothing was changed.",
    ]
    assert IdentityDetails.objects.get(identity=corp).issuer == ISSUER_A
    check_errors()

    out = io.StringIO()
    call_command("accounts_oidc_issuer", "corp", "--to", ISSUER_B + "/", stdout=out)
    assert out.getvalue().strip() == f"Bound 1 Corp identities to {ISSUER_B} (1 from {ISSUER_A})."
    call_command("check", tags=["oidc_identities"])
    out = io.StringIO()
    call_command("accounts_oidc_issuer", "corp", "--to", ISSUER_B, stdout=out)
    assert "Nothing to do" in out.getvalue()

    # Now (staff said so) the same sub at B is the same person.
    assert round_trip(client, b, "corp").headers["Location"] == "/settings/connections/"
    assert int(signed_in_user_id(client)) == person.pk


def test_accounts_oidc_issuer_has_help():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OIDC_", "SOCIAL_AUTH_"))}
    env["DJANGO_SETTINGS_MODULE"] = "linking_site.settings_test"
    result = subprocess.run(
        [sys.executable, "manage.py", "accounts_oidc_issuer", "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--to ISSUER" in result.stdout and "--dry-run" in result.stdout


# --- a provider removed, then its name re-added for another issuer --------------------------------


def test_removed_provider_is_not_available_skipped_removable_and_never_reattached(
    client,
    settings,
    tenants,
    refusals,
):
    a, b = tenants
    point_named_at(settings, "corp", a)
    person = person_signs_in_and_links_github(client, a)
    corp = UserSocialAuth.objects.get(provider="corp")
    _row, agent_key = create_agent_key(user=person, name="helper", providers=["corp", "github"])

    # The operator removes corp (a restart without it in OIDC_PROVIDERS). A session made with corp
    # ends with it; the person signs in with GitHub.
    remove_backend(settings, CORP)
    flows.sign_in(client, "github", email="alice@example.com")
    assert int(signed_in_user_id(client)) == person.pk

    # The owner sees it as not available, with no reconnect or default button, and can remove it.
    page = client.get("/settings/connections/")
    assert page.status_code == 200, page.headers
    page = page.content.decode()
    item = page[page.index(f'data-identity-id="{corp.pk}"') :].split("</li>")[0]
    assert "data-not-available" in item and "Not available" in item
    assert "Reconnect" not in item and "/default/" not in item and "Active" not in item
    # The agent API says so too, and hands out nothing for it.
    answer = client.get("/api/v1/connections", HTTP_AUTHORIZATION=f"Bearer {agent_key}").json()
    assert {c["connection"]: c["status"] for c in answer["connections"]}["corp"] == "not_available"

    # vault_refresh skips it with one summary line and sends nothing to A.
    expire(TokenSet.objects.get(identity=corp))
    token_calls = a.count("/token")
    out = io.StringIO()
    call_command("vault_refresh", stdout=out)
    assert "Skipped (provider removed or issuer changed; not sent anywhere): 1 provider unavailable" in (
        out.getvalue()
    )
    assert a.count("/token") == token_calls

    # The name comes back for another issuer: the stranger at B with the same sub is refused, the
    # person's identity is not re-attached to anyone, and check names it.
    client.post("/logout/")
    point_named_at(settings, "corp", b)
    response = round_trip(client, b, "corp")
    refused_on_page(client, response, code="issuer_mismatch")
    assert signed_in_user_id(client) is None
    assert UserSocialAuth.objects.get(provider="corp").user_id == person.pk
    assert f"1 under {ISSUER_A} (ids {corp.pk})" in check_errors()


def test_owner_removes_an_identity_of_a_removed_provider(
    client, settings, tenants, django_capture_on_commit_callbacks
):
    a, _b = tenants
    point_named_at(settings, "corp", a)
    person = person_signs_in_and_links_github(client, a)
    corp = UserSocialAuth.objects.get(provider="corp")
    remove_backend(settings, CORP)
    flows.sign_in(client, "github", email="alice@example.com")

    page = client.get(f"/settings/connections/{corp.pk}/disconnect/")
    assert page.status_code == 200
    assert "cannot be revoked" in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/settings/connections/{corp.pk}/disconnect/")
    assert response.headers["Location"] == "/settings/connections/"
    shown = flows.messages_on(client)
    assert any("Removed your" in m for m in shown), shown
    assert not UserSocialAuth.objects.filter(pk=corp.pk).exists()
    assert not TokenSet.objects.filter(provider="corp").exists()  # erased, not waiting for ever
    assert a.count("/token/revocation") == 0
    said = Activity.objects.filter(user=person, provider="corp").values_list("message", flat=True)
    assert any("could not be revoked" in message for message in said), list(said)


# --- the migration's backfill --------------------------------------------------------------------------


def test_backfill_binds_existing_identities_without_losing_anything(client, settings, tenants):
    import importlib

    a, _b = tenants
    point_named_at(settings, "corp", a)
    person_signs_in_and_links_github(client, a)
    corp = UserSocialAuth.objects.get(provider="corp")
    github = UserSocialAuth.objects.get(provider="github")
    # Rows as they were before the field existed; one legacy corp row kept no ID-token context.
    IdentityDetails.objects.update(issuer="")
    legacy = UserSocialAuth.objects.create(user=corp.user, provider="corp", uid="legacy-sub", extra_data={})
    gone = UserSocialAuth.objects.create(
        user=corp.user,
        provider="removed-idp",
        uid="x",
        extra_data={"_oidc_id_token_context": {"iss": "https://old.example.test/", "sub": "x", "aud": "c"}},
    )
    unknown = UserSocialAuth.objects.create(user=corp.user, provider="removed-idp", uid="y", extra_data={})
    details_before = {
        d.pk: (d.account_name, d.email, d.email_verified) for d in IdentityDetails.objects.all()
    }

    migration = importlib.import_module("accounts.migrations.0005_identitydetails_issuer")
    migration.backfill_issuers(django_apps, None)

    issuer = dict(IdentityDetails.objects.values_list("identity_id", "issuer"))
    assert issuer[corp.pk] == ISSUER_A  # from its ID token's iss
    assert issuer[legacy.pk] == ISSUER_A  # from the configured issuer
    assert issuer[gone.pk] == "https://old.example.test"  # a removed provider's, from its iss
    assert unknown.pk not in issuer or issuer[unknown.pk] == ""  # unknown: left unbound
    assert issuer.get(github.pk, "") == ""
    for pk, before in details_before.items():
        d = IdentityDetails.objects.get(pk=pk)
        assert (d.account_name, d.email, d.email_verified) == before
