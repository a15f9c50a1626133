"""Issue 16 (1, 2): company sign-in and linking, suggested linking, SP metadata, the libxml2 check.

Real round trips with Django's test client: the site's begin, the IdP's signed answer (tests'
key), the ACS, social-auth's pipeline. GitHub is the sandbox.
"""

from __future__ import annotations

import base64
import zlib
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.checks import run_checks
from django.test import Client
from lxml import etree
from social_django.models import UserSocialAuth

from accounts.identities import identities_for
from accounts.models import IdentityDetails
from accounts.suggestions import suggestions_for
from activity.models import Activity
from enterprise import checks
from enterprise.connections import MetadataSource, add_connection
from enterprise.models import EnterpriseConnection

from .flows import messages_on, round_trip, sign_in
from .saml_support import (
    IDP_KEYS,
    SP_KEYS,
    Answer,
    begin,
    idp_metadata,
    page_text,
    post_acs,
    request_id_from_redirect,
    signed_response,
    use_sp_keys,
)

pytestmark = pytest.mark.django_db
User = get_user_model()


@pytest.fixture
def acme(settings):
    use_sp_keys(settings)
    return add_connection(
        slug="acme",
        name="Acme Corp",
        source=MetadataSource(xml=idp_metadata([IDP_KEYS])),
        domains=["acme.test"],
    )


def saml_sign_in(client, answer: Answer | None = None, *, slug: str = "acme", **post):
    request_id = begin(client, slug=slug, **post)
    answer = answer or Answer()
    answer.slug, answer.in_response_to = slug, request_id
    return post_acs(client, signed_response(answer, IDP_KEYS), slug=slug)


def test_sign_in_page_offers_the_company_and_the_picker_finds_it_by_work_email(client, acme):
    assert "Continue with Company" in client.get("/").content.decode()
    picker = client.post("/login/saml/", {"next": "/settings/connections/"})
    assert picker.status_code == 302 and picker["Location"].startswith("/saml/choose/")
    page = client.get(picker["Location"]).content.decode()
    assert "Sign in with your company" in page and "Work email" in page and 'data-connection="acme"' in page
    to_idp = client.post("/login/saml/", {"email": "alice@ACME.test", "next": "/settings/connections/"})
    assert to_idp["Location"].startswith("https://idp.acme.test/sso?SAMLRequest=")
    assert request_id_from_redirect(to_idp["Location"])


def test_a_work_email_of_no_connection_says_so_and_offers_the_list(client, acme):
    answer = client.post("/login/saml/", {"email": "bob@elsewhere.test", "next": "/"}, follow=True)
    text = page_text(answer)
    assert "No company sign-in is set up for bob@elsewhere.test" in text and "Acme Corp" in text


def test_disabled_connections_are_not_offered_and_cannot_be_started(client, acme):
    EnterpriseConnection.objects.update(enabled=False)
    assert 'data-connection="acme"' not in client.get("/saml/choose/").content.decode()
    response = client.post("/login/saml/", {"idp": "acme", "next": "/"})
    assert response["Location"].startswith("/saml/choose/")


def test_link_company_to_a_github_profile_then_sign_in_with_either(
    client, acme, django_capture_on_commit_callbacks
):
    sign_in(client, "github", email="alice@example.com", name="Alice")
    alice = User.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        response = saml_sign_in(client)
    assert response.status_code == 302
    assert "Linked your Company account alice@acme.test (Acme Corp)." in messages_on(client)
    assert sorted(i.provider for i in identities_for(alice)) == ["github", "saml"]
    assert UserSocialAuth.objects.get(provider="saml").uid == "acme:u-1001"
    assert any("Company account was linked" in m.subject for m in mail.outbox)
    client.post("/logout/")
    assert saml_sign_in(client).status_code == 302
    assert client.get("/settings/connections/").context["user"] == alice
    assert User.objects.count() == 1


def test_linking_needs_sudo_mode(client, acme, settings):
    sign_in(client, "github", email="alice@example.com")
    settings.SUDO_MODE_SECONDS = -1
    response = client.post("/login/saml/", {"idp": "acme", "next": "/settings/connections/"})
    assert response["Location"].startswith("/settings/reauthenticate/")
    assert not UserSocialAuth.objects.filter(provider="saml").exists()


def test_a_link_started_by_alice_cannot_be_finished_after_bob_signs_in(client, acme):
    sign_in(client, "github", email="alice@example.com")
    request_id = begin(client)
    client.post("/logout/")
    sign_in(client, "github", email="bob@example.com")
    response = post_acs(client, signed_response(Answer(in_response_to=request_id), IDP_KEYS))
    assert response.status_code == 403  # the request left with alice's session
    assert not UserSocialAuth.objects.filter(provider="saml").exists()


def test_several_connections_never_collide_on_one_name_id(client, acme, settings):
    add_connection(slug="globex", name="Globex", source=MetadataSource(xml=idp_metadata([IDP_KEYS])))
    assert saml_sign_in(client).status_code == 302
    client.post("/logout/")
    assert saml_sign_in(client, slug="globex").status_code == 302
    assert sorted(UserSocialAuth.objects.values_list("uid", flat=True)) == ["acme:u-1001", "globex:u-1001"]
    assert User.objects.count() == 2


def test_the_same_email_from_another_name_id_is_another_identity(client, acme):
    assert saml_sign_in(client).status_code == 302
    client.post("/logout/")
    assert saml_sign_in(client, Answer(name_id="u-2002")).status_code == 302
    assert User.objects.count() == 2  # never matched by email


@pytest.mark.parametrize(
    ("trust", "email", "verified"),
    [(False, "alice@acme.test", False), (True, "alice@acme.test", True), (True, "alice@gmail.test", False)],
)
def test_saml_email_counts_as_verified_only_when_staff_trust_the_connection(
    client, acme, trust, email, verified
):
    EnterpriseConnection.objects.update(trust_email=trust)
    assert saml_sign_in(client, Answer(email=email)).status_code == 302
    assert IdentityDetails.objects.get(identity__provider="saml").email_verified is verified


def test_a_trusted_company_email_suggests_the_github_profile_with_that_email(client, acme):
    github = Client()
    sign_in(github, "github", email="alice@acme.test")
    EnterpriseConnection.objects.update(trust_email=True)
    assert saml_sign_in(client).status_code == 302  # stops at "a profile with this email exists"
    assert not UserSocialAuth.objects.filter(provider="saml").exists()
    EnterpriseConnection.objects.update(trust_email=False)
    assert saml_sign_in(client).status_code == 302
    saml_user = UserSocialAuth.objects.get(provider="saml").user
    assert suggestions_for(saml_user) == []


def test_the_company_identity_can_be_disconnected_like_any_other(client, acme):
    sign_in(client, "github", email="alice@example.com")
    saml_sign_in(client)
    identity = UserSocialAuth.objects.get(provider="saml")
    response = client.post(f"/settings/connections/{identity.pk}/disconnect/")
    assert response.status_code == 302
    assert any("Removed your Company account" in m for m in messages_on(client))
    assert not UserSocialAuth.objects.filter(provider="saml").exists()


def test_sp_metadata_is_signed_and_names_this_connections_urls(client, acme, settings):
    settings.SAML_SP_CERT_NEXT = IDP_KEYS.cert_pem  # any second certificate, published for rotation
    response = client.get("/saml/acme/metadata/")
    assert response.status_code == 200 and response["Content-Type"] == "application/samlmetadata+xml"
    tree = etree.fromstring(response.content)
    assert tree.get("entityID") == "http://testserver/saml/acme/metadata/"
    ns = {"md": "urn:oasis:names:tc:SAML:2.0:metadata", "ds": "http://www.w3.org/2000/09/xmldsig#"}
    assert tree.find("ds:Signature", ns) is not None
    acs = tree.find(".//md:AssertionConsumerService", ns)
    assert acs.get("Location") == "http://testserver/saml/acme/acs/"
    published = {c.text.strip() for c in tree.findall(".//md:KeyDescriptor//ds:X509Certificate", ns)}
    assert published == {SP_KEYS.cert_body, IDP_KEYS.cert_body}
    assert client.get("/saml/nobody/metadata/").status_code == 404


def test_without_an_sp_key_metadata_says_what_is_missing(client, acme, settings):
    settings.SAML_SP_KEY = ""
    response = client.get("/saml/acme/metadata/")
    assert response.status_code == 503 and b"SAML_SP_KEY" in response.content


def test_check_fails_with_one_line_when_xmlsec_and_lxml_disagree_on_libxml2(monkeypatch):
    assert [e for e in run_checks() if e.id == "enterprise.E001"] == []
    monkeypatch.setattr(checks.xmlsec, "get_libxml_version", lambda: (2, 9, 14))
    monkeypatch.setattr(checks.lxml.etree, "LIBXML_VERSION", (2, 14, 6))
    errors = [e for e in run_checks() if e.id == "enterprise.E001"]
    assert len(errors) == 1
    assert errors[0].msg.startswith("xmlsec uses libxml2 2.9.14 but lxml uses 2.14.6")
    assert "\n" not in errors[0].msg


def test_a_refused_link_is_in_the_activity_log(client, acme):
    sign_in(client, "github", email="alice@example.com")
    begin(client)
    response = post_acs(client, signed_response(Answer(in_response_to="_other"), IDP_KEYS))
    assert response.status_code == 403
    assert "Refused" in client.get("/settings/activity/").content.decode()


def test_round_trip_helper_still_links_google_after_company_sign_in(client, acme):
    saml_sign_in(client)
    round_trip(client, "google-oauth2", email="alice@acme.test")
    assert sorted(UserSocialAuth.objects.values_list("provider", flat=True)) == ["google-oauth2", "saml"]


def test_a_company_only_profile_confirms_its_you_with_its_company(client, acme, settings):
    saml_sign_in(client)
    settings.SUDO_MODE_SECONDS = -1
    reauth = client.get("/settings/reauthenticate/?next=/settings/connections/").content.decode()
    assert "Continue with Company" in reauth
    picker = client.post("/login/saml/", {"purpose": "reauth", "next": "/settings/connections/"})
    assert "purpose=reauth" in picker["Location"]
    assert 'name="purpose" value="reauth"' in client.get(picker["Location"]).content.decode()
    to_idp = client.post(
        "/login/saml/", {"idp": "acme", "purpose": "reauth", "next": "/settings/connections/"}
    )
    query = parse_qs(urlsplit(to_idp["Location"]).query)
    authn_request = zlib.decompress(base64.b64decode(query["SAMLRequest"][0]), -15).decode()
    assert 'ForceAuthn="true"' in authn_request  # the IdP is asked for a fresh sign-in
    answer = Answer(in_response_to=request_id_from_redirect(to_idp["Location"]))
    assert post_acs(client, signed_response(answer, IDP_KEYS)).status_code == 302
    assert Activity.objects.filter(kind="reauthenticated").exists() and User.objects.count() == 1
