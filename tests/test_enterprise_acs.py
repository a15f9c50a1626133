"""Issue 16 (3): the SAML rules at the ACS, with responses signed by a test IdP key.

Each refusal shows its page and links or creates nothing; each accepted shape signs the person in.
"""

from __future__ import annotations

import copy

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from lxml import etree
from social_django.models import UserSocialAuth

from activity.models import Activity
from enterprise.connections import MetadataSource, add_connection
from enterprise.models import EnterpriseConnection

from .saml_support import (
    IDP_KEYS,
    IDP_NEXT_KEYS,
    OTHER_KEYS,
    SAML,
    SAMLP,
    Answer,
    assertion_of,
    begin,
    encode,
    idp_metadata,
    page_text,
    post_acs,
    refusal,
    response_tree,
    sign,
    signed_response,
    use_sp_keys,
)

pytestmark = pytest.mark.django_db
User = get_user_model()


@pytest.fixture
def acme(settings):
    use_sp_keys(settings)
    connection = add_connection(
        slug="acme",
        name="Acme Corp",
        source=MetadataSource(xml=idp_metadata([IDP_KEYS])),
        domains=["acme.test"],
    )
    connection.attr_name = "displayName"  # the attribute mapping staff set in the admin
    connection.save()
    return connection


def nothing_made():
    return not UserSocialAuth.objects.exists() and not User.objects.exists()


def test_a_signed_answer_to_our_request_signs_in_with_a_new_profile(client, acme):
    request_id = begin(client)
    response = post_acs(client, signed_response(Answer(in_response_to=request_id), IDP_KEYS))
    assert response.status_code == 302 and response["Location"] == "/settings/connections/"
    identity = UserSocialAuth.objects.get()
    assert (identity.provider, identity.uid) == ("saml", "acme:u-1001")
    page = client.get("/settings/connections/").content.decode()
    assert "Company" in page and "Alice Acme (Acme Corp)" in page


def test_the_idps_first_cross_site_post_is_posted_again_from_this_site(client, acme):
    request_id = begin(client)
    body = signed_response(Answer(in_response_to=request_id), IDP_KEYS)
    first = client.post("/saml/acme/acs/", {"SAMLResponse": body, "RelayState": "/settings/connections/"})
    html = first.content.decode()
    assert first.status_code == 200 and 'id="saml-continue"' in html and 'name="continued" value="1"' in html
    assert "enterprise/continue.js" in html and nothing_made()


@pytest.mark.parametrize("what", ["response", "both"])
def test_a_signed_response_counts_as_well_as_a_signed_assertion(client, acme, what):
    request_id = begin(client)
    response = post_acs(client, signed_response(Answer(in_response_to=request_id), IDP_KEYS, what=what))
    assert response.status_code == 302 and UserSocialAuth.objects.filter(uid="acme:u-1001").exists()


def test_unsigned_is_refused(client, acme):
    request_id = begin(client)
    response = post_acs(client, encode(response_tree(Answer(in_response_to=request_id))))
    assert refusal(response) == "unsigned"
    assert "was not signed" in page_text(response) and nothing_made()


def test_signed_by_another_key_is_refused_even_with_its_certificate_inside(client, acme):
    request_id = begin(client)
    response = post_acs(client, signed_response(Answer(in_response_to=request_id), OTHER_KEYS))
    assert refusal(response) == "bad_signature"
    assert "not signed by Acme Corp's configured keys" in page_text(response) and nothing_made()


def _evil_copy(signed_assertion: etree._Element, name_id: str) -> etree._Element:
    evil = copy.deepcopy(signed_assertion)
    evil.set("ID", "_evil")
    for signature in evil.findall("{http://www.w3.org/2000/09/xmldsig#}Signature"):
        evil.remove(signature)
    evil.find(f"{{{SAML}}}Subject/{{{SAML}}}NameID").text = name_id
    return evil


def test_xsw_wrapped_assertion_is_refused(client, acme):
    """XSW: the signed assertion is moved into <samlp:Extensions>; an unsigned one with another
    subject takes its place."""
    request_id = begin(client)
    tree = response_tree(Answer(in_response_to=request_id))
    original = sign(assertion_of(tree), IDP_KEYS)
    evil = _evil_copy(original, "admin")
    tree.remove(original)
    extensions = etree.SubElement(tree, f"{{{SAMLP}}}Extensions")
    extensions.append(original)
    tree.insert(2, extensions)
    tree.append(evil)
    response = post_acs(client, encode(tree))
    assert refusal(response) == "wrapped"
    assert "rearranged around its signature" in page_text(response)
    assert nothing_made()


def test_xsw_duplicated_assertion_with_the_signed_one_hidden_is_refused(client, acme):
    """XSW: an unsigned copy with another subject comes first; the signed original hides inside it
    (in <saml:Advice>), so a naive reader finds a valid signature and takes the first assertion."""
    request_id = begin(client)
    tree = response_tree(Answer(in_response_to=request_id))
    original = sign(assertion_of(tree), IDP_KEYS)
    evil = _evil_copy(original, "admin")
    tree.remove(original)
    advice = etree.Element(f"{{{SAML}}}Advice")
    advice.append(original)
    evil.find(f"{{{SAML}}}Conditions").addnext(advice)
    tree.append(evil)
    response = post_acs(client, encode(tree))
    assert refusal(response) == "wrapped"
    assert nothing_made()


def test_two_assertions_side_by_side_are_refused(client, acme):
    request_id = begin(client)
    tree = response_tree(Answer(in_response_to=request_id))
    original = sign(assertion_of(tree), IDP_KEYS)
    tree.append(_evil_copy(original, "admin"))
    assert refusal(post_acs(client, encode(tree))) == "wrapped"
    assert nothing_made()


@pytest.mark.parametrize(
    ("answer", "code", "words"),
    [
        ({"audience": "https://other-sp.example/metadata"}, "wrong_audience", "meant for another site"),
        ({"recipient": "https://other-sp.example/acs"}, "wrong_recipient", "another recipient"),
        ({"destination": "https://other-sp.example/acs"}, "wrong_destination", "another page or site"),
        ({"issuer": "https://evil.example/idp"}, "wrong_issuer", "another identity provider"),
        # Past its end by two minutes: python3-saml's own drift (5 min) would let it in.
        ({"not_before": -600, "not_on_or_after": -120}, "expired", "already expired"),
        ({"not_before": 240, "not_on_or_after": 600}, "not_yet_valid", "dated in the future"),
    ],
)
def test_answers_meant_for_elsewhere_or_out_of_date_are_refused(client, acme, answer, code, words):
    request_id = begin(client)
    response = post_acs(client, signed_response(Answer(in_response_to=request_id, **answer), IDP_KEYS))
    assert refusal(response) == code
    assert words in page_text(response) and nothing_made()


def test_a_second_post_of_the_same_answer_is_refused(client, acme):
    request_id = begin(client)
    body = signed_response(Answer(in_response_to=request_id), IDP_KEYS)
    assert post_acs(client, body).status_code == 302
    client.post("/logout/")
    assert refusal(post_acs(client, body)) == "other_browser"  # its request was answered once
    assert UserSocialAuth.objects.count() == 1


def test_a_replayed_assertion_is_refused_by_the_replay_store(client, acme):
    EnterpriseConnection.objects.update(allow_idp_initiated=True)
    body = signed_response(Answer(in_response_to=None), IDP_KEYS)
    assert post_acs(client, body).status_code == 302
    client.post("/logout/")
    response = post_acs(client, body)
    assert refusal(response) == "replayed" and "already used once" in page_text(response)


def test_unsolicited_answers_are_refused_unless_the_connection_allows_them(client, acme):
    body = signed_response(Answer(in_response_to=None), IDP_KEYS)
    response = post_acs(client, body)
    assert refusal(response) == "unsolicited" and nothing_made()
    EnterpriseConnection.objects.update(allow_idp_initiated=True)
    assert post_acs(client, body, relay_state="/settings/activity/")["Location"] == "/settings/activity/"
    assert UserSocialAuth.objects.get().uid == "acme:u-1001"


def test_idp_initiated_never_links_to_a_signed_in_profile(client, acme, django_user_model):
    EnterpriseConnection.objects.update(allow_idp_initiated=True)
    bob = django_user_model.objects.create_user(username="bob")
    client.force_login(bob)
    response = post_acs(client, signed_response(Answer(in_response_to=None), IDP_KEYS))
    assert refusal(response) == "idp_initiated_signed_in" and not UserSocialAuth.objects.exists()


def test_an_answer_to_another_browsers_request_is_refused_there(client, acme):
    request_id = begin(client)
    body = signed_response(Answer(in_response_to=request_id), IDP_KEYS)
    other = Client()
    response = post_acs(other, body)
    assert refusal(response) == "other_browser" and nothing_made()
    # The browser that asked still finishes.
    assert post_acs(client, body).status_code == 302 and UserSocialAuth.objects.count() == 1


def test_an_answer_with_another_request_id_is_refused(client, acme):
    begin(client)
    response = post_acs(client, signed_response(Answer(in_response_to="_not-ours"), IDP_KEYS))
    assert refusal(response) == "wrong_request" and nothing_made()


def test_a_callback_finished_by_another_signed_in_user_is_refused(client, acme, django_user_model):
    request_id = begin(client)  # started signed out
    bob = django_user_model.objects.create_user(username="bob")
    client.force_login(bob)  # someone else signs in in this browser meanwhile
    response = post_acs(client, signed_response(Answer(in_response_to=request_id), IDP_KEYS))
    assert refusal(response) == "user_mismatch"
    assert not UserSocialAuth.objects.exists()
    assert Activity.objects.filter(kind="link_refused", user=bob).exists()


@pytest.mark.parametrize("relay_state", ["https://evil.example/", "//evil.example/x", "javascript:alert(1)"])
def test_relay_state_must_be_a_same_site_path(client, acme, relay_state):
    request_id = begin(client)
    response = post_acs(
        client, signed_response(Answer(in_response_to=request_id), IDP_KEYS), relay_state=relay_state
    )
    assert refusal(response) == "relay_state" and nothing_made()


def test_a_connection_disabled_meanwhile_refuses_at_once(client, acme):
    request_id = begin(client)
    EnterpriseConnection.objects.update(enabled=False)
    response = post_acs(client, signed_response(Answer(in_response_to=request_id), IDP_KEYS))
    assert refusal(response) == "connection_disabled"
    assert "Sign-in with Acme Corp is turned off" in page_text(response) and nothing_made()


def test_during_rollover_either_configured_certificate_is_accepted(client, acme):
    EnterpriseConnection.objects.update(signing_certificates=[IDP_KEYS.cert_body, IDP_NEXT_KEYS.cert_body])
    request_id = begin(client)
    assert (
        post_acs(client, signed_response(Answer(in_response_to=request_id), IDP_NEXT_KEYS)).status_code == 302
    )
    assert UserSocialAuth.objects.filter(uid="acme:u-1001").exists()
