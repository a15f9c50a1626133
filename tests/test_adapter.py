"""Issue 13 (4): accounts' one extension point, the adapter (``accounts.adapter``).

It replaced three ``import_string`` settings lists, a readiness list, the ``profiles_merging``
signal and a template include of the vault in the connections page. ``accounts`` works alone with
the default adapter; the site names the vault's; a site can write its own.
"""

from __future__ import annotations

import logging

import pytest
from django.conf import settings as django_settings
from django.utils.html import format_html
from social_django.models import UserSocialAuth

from accounts import merging, refusals
from accounts import signals as accounts_signals
from accounts.adapter import AccountsAdapter, IdentityStatus, get_adapter
from accounts.models import User
from vault.adapter import VaultAccountsAdapter
from vault.models import TokenSet

from .flows import sign_in

pytestmark = pytest.mark.django_db

OLD_WIRING = (
    "ACCOUNTS_CONNECTIONS_EXTRAS",
    "ACCOUNTS_MERGE_REVIEW_EXTRAS",
    "ACCOUNTS_UNKEPT_TOKENS_HANDLERS",
    "READINESS_CHECKS",
)


class BackupsAdapter(AccountsAdapter):
    """A site's own adapter, as docs/architecture.md shows one."""

    def identity_statuses(self, user: User) -> dict[int, IdentityStatus]:
        return {
            identity.pk: IdentityStatus(
                html=format_html("<dt>Backups</dt><dd data-backups>{}</dd>", "last run failed"),
                needs_reconnect=True,
            )
            for identity in user.social_auth.all()
        }

    def merge_review(self, source: User) -> dict[str, str]:
        return {"backups": "kept on the profile that stays"}

    def readiness_problems(self) -> list[str]:
        return ["backups: storage unreachable"]


class FailingVaultAdapter(VaultAccountsAdapter):
    def unkept_tokens(self, **kwargs) -> None:
        raise ConnectionError("the vault's database went away")


def test_the_site_wires_the_vault_through_one_adapter_setting():
    assert django_settings.ACCOUNTS_ADAPTER == "vault.adapter.VaultAccountsAdapter"
    assert type(get_adapter()) is VaultAccountsAdapter
    assert [name for name in OLD_WIRING if hasattr(django_settings, name)] == []
    assert not hasattr(accounts_signals, "profiles_merging"), "the adapter replaced the signal"


def test_accounts_alone_works_with_the_default_adapter(client, settings):
    del settings.ACCOUNTS_ADAPTER
    assert type(get_adapter()) is AccountsAdapter
    sign_in(client, "github", email="alice@example.com")
    page = client.get("/settings/connections/").content.decode()
    assert 'data-provider="github"' in page
    assert "data-token-status" not in page and "Reconnect GitHub" not in page
    assert client.get("/readyz").json() == {"status": "ok", "problems": []}
    alice = User.objects.get()
    other = User.objects.create_user("other", "other@example.com")
    assert merging.plan_merge(into=alice, source=other).extras == {}


def test_the_vaults_adapter_shows_token_status_and_what_a_merge_does_to_tokens(client):
    sign_in(client, "github", email="alice@example.com")
    page = client.get("/settings/connections/").content.decode()
    assert page.count('data-token-status="active"') == 1
    alice = User.objects.get()
    other = User.objects.create_user("other", "other@example.com")
    assert merging.plan_merge(into=other, source=alice).extras == {
        "stored tokens": "tokens of 1 account(s); moved accounts keep theirs, dropped accounts' are revoked"
    }


def test_a_sites_own_adapter_reaches_the_page_the_review_and_readyz(client, settings):
    settings.ACCOUNTS_ADAPTER = f"{__name__}.BackupsAdapter"
    sign_in(client, "github", email="alice@example.com")
    page = client.get("/settings/connections/").content.decode()
    assert "<dd data-backups>last run failed</dd>" in page
    assert "Reconnect GitHub" in page
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "problems": ["backups: storage unreachable"]}
    alice = User.objects.get()
    other = User.objects.create_user("other", "other@example.com")
    plan = merging.plan_merge(into=other, source=alice)
    assert "  backups: kept on the profile that stays" in plan.describe()


def test_a_refused_flows_tokens_reach_the_vault_through_the_adapter():
    refusals.hand_over_unkept_tokens(
        provider="github",
        uid="4242",
        owner=None,
        tokens={"access_token": "gho_unkept_secret", "token_type": "bearer"},
        reason="identity_in_use",
    )
    waiting = TokenSet.objects.waiting_for_revocation().get()
    assert (waiting.provider, waiting.uid) == ("github", "4242")
    assert waiting.read_access_token() == "gho_unkept_secret"
    assert not UserSocialAuth.objects.exists()


def test_a_failing_adapter_is_logged_by_type_never_with_the_tokens(settings, caplog):
    settings.ACCOUNTS_ADAPTER = f"{__name__}.FailingVaultAdapter"
    with caplog.at_level(logging.ERROR, logger="accounts.refusals"):
        refusals.hand_over_unkept_tokens(
            provider="github",
            uid="4242",
            owner=None,
            tokens={"access_token": "gho_unkept_secret"},
            reason="identity_in_use",
        )
    assert [r.getMessage() for r in caplog.records] == [
        "Could not hand the github tokens of a refused flow (identity_in_use) to FailingVaultAdapter: "
        "ConnectionError"
    ]
    assert not TokenSet.objects.exists()
