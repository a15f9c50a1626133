"""The OpenID Connect backend's protocol checks, against a fake provider at the network edge.

Each rejection gets a properly shaped answer from the provider with exactly one thing wrong (mostly
a locally signed ID token), and must be refused with a clear message, nothing linked or created,
and (for everything about the ID token or the authorization response) no UserInfo call made.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from social_core.exceptions import AuthResponseError
from social_django.models import UserSocialAuth
from social_django.utils import load_backend, load_strategy

from accounts.activity_kinds import AccountKind
from accounts.middleware import AuthFlowErrorMiddleware
from accounts.models import User
from activity.models import Activity

from . import oidc_fixtures
from .flows import messages_on
from .oidc_fixtures import FAKE_ISSUER, SigningKey, _rsa_key, b64url

pytestmark = pytest.mark.django_db

fake_op = oidc_fixtures.fake_op
fake_site = oidc_fixtures.fake_site
REFUSALS: list = []


@pytest.fixture(autouse=True)
def _record_refusals(monkeypatch):
    """Keep the exception the site turned into a message, to check which claim it was about."""
    original = AuthFlowErrorMiddleware.process_exception

    def process_exception(self, request, exception):
        REFUSALS.append(exception)
        return original(self, request, exception)

    REFUSALS.clear()
    monkeypatch.setattr(AuthFlowErrorMiddleware, "process_exception", process_exception)


def begin(client, provider: str = "oidc") -> dict[str, str]:
    response = client.post(f"/login/{provider}/")
    assert response.status_code == 302, response.content[:500]
    location = response.headers["Location"]
    assert location.startswith(f"{FAKE_ISSUER}/auth?"), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def round_trip(client, op, *, iss: str | None = FAKE_ISSUER, provider: str = "oidc"):
    """POST begin, then deliver the provider's callback (as its redirect would) with a good code."""
    query = begin(client, provider)
    op.authorize_query = query
    params = {"code": "good-code", "state": query["state"]}
    if iss is not None:
        params["iss"] = iss
    return client.get(f"/complete/{provider}/", params)


def assert_refused(
    client, op, response, code: str, *, claim: str | None = None, userinfo_calls: int = 0
) -> None:
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert not UserSocialAuth.objects.exists()
    assert not User.objects.exists()
    assert op.count("/me") == userinfo_calls
    refused = Activity.objects.get(kind=AccountKind.LINK_REFUSED)
    assert refused.data["code"] == code, refused.data
    assert len(REFUSALS) == 1 and REFUSALS[0].code == code
    if claim is not None:
        assert REFUSALS[0].claim == claim, (REFUSALS[0].claim, str(REFUSALS[0]))
    shown = messages_on(client, "/")
    assert len(shown) == 1 and "Example IdP" in shown[0], shown


def unsigned(claims: dict, header: dict) -> str:
    encode = lambda part: b64url(json.dumps(part).encode())  # noqa: E731
    return f"{encode(header)}.{encode(claims)}."


# --- the good path, so the refusals below are refusals of exactly one thing -----------------------


def test_sign_in_with_a_well_behaved_provider(client, fake_site):
    query = begin(client)
    assert query["response_type"] == "code"
    assert query["client_id"] == fake_site.client_id
    assert query["redirect_uri"] == "http://testserver/complete/oidc/"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert len(query["nonce"]) >= 32 and len(query["state"]) >= 32
    assert query["scope"].split() == ["openid", "profile", "email", "offline_access"]
    # OpenID Connect Core 11: offline_access counts only with a consent prompt.
    assert query["prompt"] == "consent"

    fake_site.authorize_query = query
    response = client.get(
        "/complete/oidc/", {"code": "good-code", "state": query["state"], "iss": FAKE_ISSUER}
    )
    assert response.status_code == 302 and response.headers["Location"] == "/settings/connections/"
    identity = UserSocialAuth.objects.get()
    assert (identity.provider, identity.uid) == ("oidc", fake_site.sub)
    assert fake_site.count("/me") == 1
    # The token exchange authenticated with HTTP Basic and sent the PKCE verifier (fake checks both).
    context = identity.extra_data["_oidc_id_token_context"]
    assert context["sub"] == fake_site.sub and context["iss"] == FAKE_ISSUER
    assert not {"access_token", "refresh_token", "id_token"} & set(identity.extra_data)
    assert identity.details.email == "alice@example.com"
    assert identity.details.email_verified is False  # trust flag off: email_verified is not believed


def test_email_verified_counts_only_with_the_trust_flag(client, fake_site, settings):
    settings.SOCIAL_AUTH_OIDC_TRUST_EMAIL_VERIFIED = True
    assert round_trip(client, fake_site).headers["Location"] == "/settings/connections/"
    assert UserSocialAuth.objects.get().details.email_verified is True


def test_reauthentication_asks_for_login_and_consent(client, fake_site):
    assert round_trip(client, fake_site).status_code == 302
    response = client.post("/login/oidc/", {"purpose": "reauth"})
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["prompt"] == ["login consent"] and query["max_age"] == ["0"]


def test_new_signing_key_is_fetched_once_when_the_provider_rotates(client, fake_site):
    # The JWKS is cached; a token signed with a key it does not have makes one refetch.
    assert round_trip(client, fake_site).status_code == 302
    assert fake_site.count("/jwks") == 1
    client.post("/logout/")
    fake_site.keys.insert(0, SigningKey("key-2", _rsa_key(1)))
    response = round_trip(client, fake_site)
    assert response.headers["Location"] == "/settings/connections/"
    assert fake_site.count("/jwks") == 2
    assert UserSocialAuth.objects.count() == 1


def test_several_audiences_with_azp_and_a_trusted_extra_audience_are_accepted(client, fake_site, settings):
    settings.SOCIAL_AUTH_OIDC_TRUSTED_AUDIENCES = ["https://api.example.test"]

    def token(op, claims):
        return op.sign({**claims, "aud": [op.client_id, "https://api.example.test"], "azp": op.client_id})

    fake_site.id_token = token
    assert round_trip(client, fake_site).headers["Location"] == "/settings/connections/"


# --- every rejection ---------------------------------------------------------------------------


def test_wrong_signature(client, fake_site):
    # Signed by a key the provider never published, under the provider's own kid.
    stranger = SigningKey(fake_site.signing_key.kid, _rsa_key(2))
    fake_site.id_token = lambda op, claims: op.sign(claims, key=stranger)
    assert_refused(client, fake_site, round_trip(client, fake_site), "invalid_signature")
    assert fake_site.count("/jwks") == 1  # a known kid with a bad signature is not a rotation


def test_unknown_kid_is_refused_after_one_refetch(client, fake_site):
    stranger = SigningKey("not-published", _rsa_key(2))
    fake_site.id_token = lambda op, claims: op.sign(claims, key=stranger)
    assert_refused(client, fake_site, round_trip(client, fake_site), "invalid_signature")
    assert fake_site.count("/jwks") == 2


def test_alg_none_is_refused(client, fake_site):
    fake_site.id_token = lambda op, claims: unsigned(claims, {"alg": "none", "typ": "JWT"})
    assert_refused(client, fake_site, round_trip(client, fake_site), "invalid_signature")


def test_hs256_signed_with_the_client_secret_is_refused(client, fake_site):
    # The provider even advertises HS256: a token MACed with the (shared) client secret must
    # still never count, with or without a kid.
    assert "HS256" in fake_site.discovery()["id_token_signing_alg_values_supported"]
    fake_site.id_token = lambda op, claims: jwt.encode(
        claims, op.client_secret, algorithm="HS256", headers={"kid": op.signing_key.kid}
    )
    assert_refused(client, fake_site, round_trip(client, fake_site), "invalid_signature")


def test_rs256_header_over_an_hmac_with_the_public_key_is_refused(client, fake_site):
    # The classic confusion: the header says RS256, the "signature" is an HMAC keyed with the
    # provider's public key (PEM), which a verifier that trusts the header might accept.
    def token(op, claims):
        pem = op.signing_key.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        header = b64url(json.dumps({"alg": "RS256", "kid": op.signing_key.kid}).encode())
        signing_input = f"{header}.{b64url(json.dumps(claims).encode())}"
        mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(mac)}"

    fake_site.id_token = token
    assert_refused(client, fake_site, round_trip(client, fake_site), "invalid_signature")


def test_an_access_token_jwt_is_not_an_id_token(client, fake_site):
    fake_site.id_token = lambda op, claims: op.sign(claims, headers={"typ": "at+jwt"})
    assert_refused(client, fake_site, round_trip(client, fake_site), "invalid_claim")


def test_wrong_iss(client, fake_site):
    fake_site.id_token = lambda op, claims: op.sign({**claims, "iss": "https://evil.example.test"})
    assert_refused(client, fake_site, round_trip(client, fake_site), "invalid_claim", claim="iss")


def test_wrong_aud(client, fake_site):
    fake_site.id_token = lambda op, claims: op.sign({**claims, "aud": "someone-else"})
    assert_refused(client, fake_site, round_trip(client, fake_site), "invalid_claim", claim="aud")


def test_extra_untrusted_audience_is_refused_even_with_azp(client, fake_site):
    fake_site.id_token = lambda op, claims: op.sign(
        {**claims, "aud": [op.client_id, "https://api.example.test"], "azp": op.client_id}
    )
    assert_refused(client, fake_site, round_trip(client, fake_site), "invalid_claim", claim="aud")


@pytest.mark.parametrize("azp", [None, "someone-else"], ids=["missing-azp", "wrong-azp"])
def test_several_audiences_need_azp_naming_this_client(client, fake_site, settings, azp):
    settings.SOCIAL_AUTH_OIDC_TRUSTED_AUDIENCES = ["https://api.example.test"]

    def token(op, claims):
        claims = {**claims, "aud": [op.client_id, "https://api.example.test"]}
        if azp:
            claims["azp"] = azp
        return op.sign(claims)

    fake_site.id_token = token
    assert_refused(client, fake_site, round_trip(client, fake_site), "invalid_claim", claim="azp")


def test_expired_exp(client, fake_site):
    now = int(time.time())
    fake_site.id_token = lambda op, claims: op.sign({**claims, "iat": now - 7200, "exp": now - 3600})
    assert_refused(client, fake_site, round_trip(client, fake_site), "response_expired", claim="exp")


def test_iat_far_in_the_future(client, fake_site):
    later = int(time.time()) + 3600
    fake_site.id_token = lambda op, claims: op.sign({**claims, "iat": later, "exp": later + 3600})
    assert_refused(client, fake_site, round_trip(client, fake_site), "response_not_yet_valid", claim="iat")


def test_id_token_issued_too_long_ago(client, fake_site):
    old = int(time.time()) - 3600
    fake_site.id_token = lambda op, claims: op.sign({**claims, "iat": old})
    assert_refused(client, fake_site, round_trip(client, fake_site), "response_expired", claim="iat")


@pytest.mark.parametrize("nonce", ["another-nonce", None], ids=["wrong-nonce", "missing-nonce"])
def test_wrong_nonce(client, fake_site, nonce):
    def token(op, claims):
        claims = {k: v for k, v in claims.items() if k != "nonce"}
        if nonce:
            claims["nonce"] = nonce
        return op.sign(claims)

    fake_site.id_token = token
    assert_refused(client, fake_site, round_trip(client, fake_site), "nonce_mismatch")


def test_wrong_at_hash(client, fake_site):
    fake_site.id_token = lambda op, claims: op.sign({**claims, "at_hash": b64url(b"0" * 16)})
    assert_refused(client, fake_site, round_trip(client, fake_site), "invalid_claim", claim="at_hash")


@pytest.mark.parametrize("sub", ["someone-else", None], ids=["other-sub", "no-sub"])
def test_userinfo_sub_must_be_the_id_tokens(client, fake_site, sub):
    fake_site.userinfo = {"sub": sub}
    response = round_trip(client, fake_site)
    # UserInfo is necessarily called here (its answer is what is wrong), exactly once.
    assert_refused(client, fake_site, response, "invalid_claim", claim="sub", userinfo_calls=1)


def test_wrong_rfc9207_iss_in_the_authorization_response(client, fake_site):
    response = round_trip(client, fake_site, iss="https://evil.example.test")
    assert_refused(client, fake_site, response, "invalid_claim", claim="iss")
    assert fake_site.count("/token") == 0  # the code never left the site


def test_a_mixed_up_response_uses_up_its_state(client, fake_site):
    """One use per state, failure included (issue 12.9): after a refused mix-up, the same state
    with the right iss and a code never reaches the token endpoint."""
    query = begin(client)
    fake_site.authorize_query = query
    refused = client.get(
        "/complete/oidc/", {"code": "good-code", "state": query["state"], "iss": "https://evil.example.test"}
    )
    assert refused.status_code == 302 and refused.headers["Location"] == "/"
    replay = client.get("/complete/oidc/", {"code": "good-code", "state": query["state"], "iss": FAKE_ISSUER})
    assert replay.status_code == 302 and replay.headers["Location"] == "/"
    assert [r.code for r in REFUSALS] == ["invalid_claim", "session_context_missing"]
    assert fake_site.count("/token") == 0 and not UserSocialAuth.objects.exists()


def test_a_mixed_up_response_with_another_state_leaves_the_flow_to_complete(client, fake_site):
    query = begin(client)
    fake_site.authorize_query = query
    forged = client.get(
        "/complete/oidc/",
        {"code": "stolen", "state": "not-the-pending-one", "iss": "https://evil.example.test"},
    )
    assert forged.status_code == 302
    real = client.get("/complete/oidc/", {"code": "good-code", "state": query["state"], "iss": FAKE_ISSUER})
    assert real.headers["Location"] == "/settings/connections/"
    assert UserSocialAuth.objects.get().uid == fake_site.sub


def test_missing_rfc9207_iss_when_the_provider_advertises_it(client, fake_site):
    response = round_trip(client, fake_site, iss=None)
    assert_refused(client, fake_site, response, "missing_claim", claim="iss")
    assert fake_site.count("/token") == 0


def test_rfc9207_iss_is_optional_when_not_advertised(client, fake_site):
    fake_site.discovery_changes = {"authorization_response_iss_parameter_supported": None}
    assert round_trip(client, fake_site, iss=None).headers["Location"] == "/settings/connections/"


def test_rfc9207_iss_is_checked_when_sent_even_if_not_advertised(client, fake_site):
    fake_site.discovery_changes = {"authorization_response_iss_parameter_supported": None}
    response = round_trip(client, fake_site, iss="https://evil.example.test")
    assert_refused(client, fake_site, response, "invalid_claim", claim="iss")
    assert fake_site.count("/token") == 0


def test_discovery_naming_another_issuer_refuses_to_start(client, fake_site):
    fake_site.discovery_changes = {"issuer": "https://evil.example.test"}
    response = client.post("/login/oidc/")
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert Activity.objects.get(kind=AccountKind.LINK_REFUSED).data["code"] == "invalid_setting"
    assert fake_site.count("/auth") == 0


# --- refresh ---------------------------------------------------------------------------------------


def _backend():
    return load_backend(load_strategy(), "oidc", redirect_uri=None)


def test_refresh_authenticates_like_the_code_exchange_and_checks_the_new_id_token(client, fake_site):
    assert round_trip(client, fake_site).status_code == 302
    identity = UserSocialAuth.objects.get()
    backend = _backend()
    response = backend.refresh_token("rt-old")  # the fake refuses anything but HTTP Basic
    assert response["access_token"].startswith("at-")
    claims = backend.validate_refreshed_id_token(
        response["id_token"],
        identity.uid,
        context=identity.extra_data["_oidc_id_token_context"],
        access_token=response["access_token"],
    )
    assert claims["sub"] == identity.uid and claims["iss"] == FAKE_ISSUER


def test_refreshed_id_token_for_another_subject_is_refused(client, fake_site):
    assert round_trip(client, fake_site).status_code == 302
    identity = UserSocialAuth.objects.get()
    fake_site.sub = "someone-else"
    response = _backend().refresh_token("rt-old")
    with pytest.raises(AuthResponseError) as refused:
        _backend().validate_refreshed_id_token(response["id_token"], identity.uid)
    assert (refused.value.code, refused.value.stage) == ("invalid_claim", "refresh")


def test_refreshed_id_token_from_another_issuer_is_refused(client, fake_site):
    assert round_trip(client, fake_site).status_code == 302
    identity = UserSocialAuth.objects.get()
    token = fake_site.sign(
        {**fake_site.base_claims(nonce=None, access_token="x"), "iss": "https://evil.example.test"}
    )
    with pytest.raises(AuthResponseError) as refused:
        _backend().validate_refreshed_id_token(token, identity.uid)
    assert (refused.value.code, refused.value.stage) == ("invalid_claim", "refresh")


def test_refreshed_id_token_with_a_bad_signature_is_refused(client, fake_site):
    assert round_trip(client, fake_site).status_code == 302
    identity = UserSocialAuth.objects.get()
    stranger = SigningKey(fake_site.signing_key.kid, _rsa_key(2))
    token = fake_site.sign(fake_site.base_claims(nonce=None, access_token="x"), key=stranger)
    with pytest.raises(AuthResponseError) as refused:
        _backend().validate_refreshed_id_token(token, identity.uid)
    assert refused.value.code == "invalid_signature"


def test_pkce_verifier_matches_the_s256_challenge(client, fake_site):
    # The fake already refuses a wrong verifier; check the challenge derivation once here too.
    verifier = "a" * 43
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert _backend().generate_code_challenge(verifier, "S256") == challenge
    assert _backend().setting("PKCE_CODE_CHALLENGE_METHOD") == "S256"
