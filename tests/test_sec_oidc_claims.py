"""Issue 20.7: ID-token, token-response and UserInfo members of the wrong JSON type are refused.

Each case is a provider answer, properly signed, with one member of an odd type. Before the fix a
numeric-string ``iat``/``nbf`` answered a 500 (``TypeError``) whose DEBUG page showed the tokens,
the PKCE verifier and the client secret; others were coerced (``exp: true`` read as 1970). Now each
is a clean ``invalid_claim`` refusal on a page, and nothing is created.
"""

from __future__ import annotations

import time

import pytest
from social_core.exceptions import AuthResponseError
from social_django.models import UserSocialAuth
from social_django.utils import load_backend, load_strategy

from accounts.models import User

from . import sec_oidc_helpers
from .sec_oidc_helpers import point_oidc_at, refused_on_page, round_trip

pytestmark = pytest.mark.django_db

fake_ops = sec_oidc_helpers.fake_ops
refusals = sec_oidc_helpers.refusals

ISSUER = "https://op.example.test"
NOW = int(time.time())

ID_TOKEN_CASES = {
    "iat-numeric-string": ("iat", str(NOW)),
    "nbf-numeric-string": ("nbf", str(NOW - 10)),
    "exp-numeric-string": ("exp", str(NOW + 3600)),
    "auth_time-numeric-string": ("auth_time", str(NOW - 5)),
    "iat-list": ("iat", [NOW]),
    "exp-list": ("exp", [NOW + 3600]),
    "iat-true": ("iat", True),
    "exp-true": ("exp", True),
    "nbf-false": ("nbf", False),
    "exp-infinity": ("exp", float("inf")),
    "exp-nan": ("exp", float("nan")),
    "exp-year-10000": ("exp", 253402300800 + 10),
    "auth_time-object": ("auth_time", {"at": NOW}),
    "sub-number": ("sub", 248289761001),
    "sub-list": ("sub", ["248289761001"]),
    "sub-too-long": ("sub", "s" * 256),
    "aud-number": ("aud", 42),
    "aud-object": ("aud", {"client": "linking-site-client"}),
    "aud-list-with-number": ("aud", ["linking-site-client", 7]),
    "aud-empty-list": ("aud", []),
    "azp-number": ("azp", 1),
    "at_hash-list": ("at_hash", ["x"]),
}


@pytest.fixture
def op(settings, fake_ops):
    provider = fake_ops.add(ISSUER)
    point_oidc_at(settings, provider)
    return provider


def assert_invalid_claim(client, op, response, refusals, claim, *, userinfo_calls=0):
    shown = refused_on_page(client, response, code="invalid_claim")
    assert "Example IdP" in shown[0]
    assert not UserSocialAuth.objects.exists() and not User.objects.exists()
    assert [(e.code, e.claim) for e in refusals] == [("invalid_claim", claim)]
    assert op.count("/me") == userinfo_calls


@pytest.mark.parametrize(("claim", "value"), list(ID_TOKEN_CASES.values()), ids=list(ID_TOKEN_CASES))
def test_id_token_claim_of_the_wrong_type_is_a_clean_refusal(client, op, refusals, claim, value):
    op.id_token = lambda provider, claims: provider.sign({**claims, claim: value})
    assert_invalid_claim(client, op, round_trip(client, op), refusals, claim)


TOKEN_RESPONSE_CASES = {
    "expires_in-numeric-string": ("expires_in", "300"),
    "expires_in-word": ("expires_in", "soon"),
    "expires_in-true": ("expires_in", True),
    "expires_in-negative": ("expires_in", -5),
    "expires_in-float-overflow": ("expires_in", 1e20),
    "expires_in-list": ("expires_in", [300]),
    "scope-list": ("scope", ["openid", "email"]),
    "token_type-number": ("token_type", 5),
    "refresh_token-object": ("refresh_token", {"value": "rt"}),
}


@pytest.mark.parametrize(
    ("member", "value"), list(TOKEN_RESPONSE_CASES.values()), ids=list(TOKEN_RESPONSE_CASES)
)
def test_token_response_member_of_the_wrong_type_is_a_clean_refusal(client, op, refusals, member, value):
    op.token_changes = {member: value}
    assert_invalid_claim(client, op, round_trip(client, op), refusals, member)


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("email", {"address": "alice@example.com"}),
        ("name", ["Alice"]),
        ("picture", 5),
        ("email_verified", "true"),
    ],
    ids=["email-object", "name-list", "picture-number", "email_verified-string"],
)
def test_userinfo_claim_of_the_wrong_type_is_a_clean_refusal(client, op, refusals, claim, value):
    op.userinfo = {claim: value}
    assert_invalid_claim(client, op, round_trip(client, op), refusals, claim, userinfo_calls=1)


def test_the_well_typed_answer_still_signs_in(client, op):
    response = round_trip(client, op)
    assert response.headers["Location"] == "/settings/connections/"
    assert UserSocialAuth.objects.get().uid == op.sub


# --- the same at refresh (the vault's refresh of a stored OIDC token) -------------------------------


def _backend():
    return load_backend(load_strategy(), "oidc", redirect_uri=None)


@pytest.mark.parametrize(
    ("claim", "value"), [("iat", str(NOW)), ("nbf", str(NOW)), ("exp", [NOW + 60])], ids=["iat", "nbf", "exp"]
)
def test_refreshed_id_token_claim_of_the_wrong_type_is_refused_not_a_type_error(op, claim, value):
    token = op.sign({**op.base_claims(nonce=None, access_token="at-x"), claim: value})
    with pytest.raises(AuthResponseError) as refused:
        _backend().validate_refreshed_id_token(token, op.sub, access_token="at-x")
    assert (refused.value.code, refused.value.claim, refused.value.stage) == (
        "invalid_claim",
        claim,
        "refresh",
    )


def test_refresh_response_with_a_string_expires_in_is_refused(op):
    op.token_changes = {"expires_in": "3600"}
    with pytest.raises(AuthResponseError) as refused:
        _backend().refresh_token("rt-old")
    assert (refused.value.code, refused.value.claim, refused.value.stage) == (
        "invalid_claim",
        "expires_in",
        "refresh",
    )
