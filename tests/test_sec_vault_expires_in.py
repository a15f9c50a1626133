"""A token response's ``expires_in`` that is no sane number of seconds (issue 20, claims family).

A provider (or something in between) answering ``1e20``, infinity, ``true`` or a negative number
must neither crash the sign-in nor give a token that never expires: it counts as missing, so the
conservative assumed lifetime applies (issue 20.9).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from social_django.models import UserSocialAuth

from vault import capture as vault_capture

from .flows import sign_in

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("expires_in", [1e20, float("inf"), float("nan"), True, -5, "soon", [3600], 10**30])
def test_an_impossible_expires_in_gets_the_assumed_lifetime(settings, client, expires_in):
    settings.VAULT_ASSUMED_TOKEN_LIFETIME = 1800
    sign_in(client, "github", email="alice@example.com")
    identity = UserSocialAuth.objects.get()
    before = timezone.now()
    token_set = vault_capture.capture_tokens(
        identity=identity,
        response={"access_token": "gho_" + "a" * 36, "token_type": "bearer", "expires_in": expires_in},
    )
    assert token_set.expiry_assumed is True
    assert (
        before + timedelta(seconds=1790) <= token_set.expires_at <= timezone.now() + timedelta(seconds=1800)
    )


def test_a_sane_expires_in_is_kept(client):
    sign_in(client, "github", email="alice@example.com")
    identity = UserSocialAuth.objects.get()
    token_set = vault_capture.capture_tokens(
        identity=identity, response={"access_token": "gho_" + "b" * 36, "expires_in": "28800"}
    )
    assert token_set.expiry_assumed is False
    assert timedelta(seconds=28790) <= token_set.expires_at - timezone.now() <= timedelta(seconds=28800)
