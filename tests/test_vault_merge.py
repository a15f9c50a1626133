"""Merging profiles: moved accounts keep their tokens (re-bound), dropped ones are revoked."""

from __future__ import annotations

import pytest
from django.test import Client
from social_django.models import UserSocialAuth

import vault
from accounts.merging import merge_profiles, plan_merge
from accounts.models import User
from sandbox.state import token_is_active
from vault.models import TokenSet

from .flows import round_trip, sign_in
from .vault_support import stored_tokens

pytestmark = pytest.mark.django_db


def test_merge_rebinds_moved_tokens_and_revokes_dropped_ones(django_capture_on_commit_callbacks):
    sign_in(Client(), "google-oauth2", email="ada@example.com")
    into = User.objects.get()
    source_client = Client()
    sign_in(source_client, "github", email="bea@example.com")
    round_trip(source_client, "github", email="bea-old@example.com")
    source = User.objects.exclude(pk=into.pk).get()
    keep = UserSocialAuth.objects.get(details__email="bea@example.com")
    drop = UserSocialAuth.objects.get(details__email="bea-old@example.com")
    kept_tokens = stored_tokens(keep.token_set)
    dropped_tokens = stored_tokens(drop.token_set)

    plan = plan_merge(into=into, source=source, move_identity_ids=[keep.pk])
    assert any("stored tokens: tokens of 2 account(s)" in line for line in plan.describe())

    with django_capture_on_commit_callbacks(execute=True):
        merge_profiles(into=into, source=source, move_identity_ids=[keep.pk])

    moved = TokenSet.objects.get(identity=keep)
    assert moved.owner_id == into.pk
    assert stored_tokens(moved) == kept_tokens
    token = vault.get_access_token(into, "github")
    assert (token.access_token, token.account) == (kept_tokens[0], keep.pk)
    with pytest.raises(vault.ConnectionRequired):
        vault.get_access_token(source, "github")
    assert not token_is_active("github", dropped_tokens[1])
    assert TokenSet.objects.count() == 2
