"""A test SAML identity provider: keys and certificates made here (``cryptography``), responses
built as real IdPs shape them and signed with ``xmlsec``, metadata to configure a connection.

Only what an IdP sends is faked; the site's checks (python3-saml and ``enterprise.acs``) are real.
"""

from __future__ import annotations

import base64
import datetime as dt
import html as html_module
import uuid
import zlib
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
IDP_ENTITY = "https://idp.acme.test/saml"
IDP_SSO = "https://idp.acme.test/sso"
SITE = "http://testserver"


@dataclass(frozen=True)
class KeyPair:
    key_pem: str
    cert_pem: str

    @property
    def cert_body(self) -> str:
        """The certificate as metadata carries it: base64 without PEM armour."""
        return "".join(line for line in self.cert_pem.splitlines() if "-----" not in line)


def make_key_pair(common_name: str = "Test IdP") -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return KeyPair(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        cert.public_bytes(serialization.Encoding.PEM).decode(),
    )


def idp_metadata(certs: list[KeyPair], *, entity_id: str = IDP_ENTITY, sso_url: str = IDP_SSO) -> str:
    descriptors = "".join(
        f'<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{c.cert_body}'
        "</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
        for c in certs
    )
    return (
        '<?xml version="1.0"?>'
        f'<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="{DS}" '
        f'entityID="{entity_id}"><md:IDPSSODescriptor '
        'protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        f"{descriptors}"
        '<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" '
        f'Location="{sso_url}"/></md:IDPSSODescriptor></md:EntityDescriptor>'
    )


def _time(offset_seconds: int) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset_seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Answer:
    """What the IdP asserts, with every field a test may bend."""

    slug: str = "acme"
    in_response_to: str | None = None
    name_id: str = "u-1001"
    email: str = "alice@acme.test"
    name: str = "Alice Acme"
    issuer: str = IDP_ENTITY
    audience: str | None = None
    destination: str | None = None
    recipient: str | None = None
    not_before: int = -30
    not_on_or_after: int = 300
    response_id: str = field(default_factory=lambda: "_r" + uuid.uuid4().hex)
    assertion_id: str = field(default_factory=lambda: "_a" + uuid.uuid4().hex)


def response_tree(answer: Answer) -> etree._Element:
    acs = answer.destination or f"{SITE}/saml/{answer.slug}/acs/"
    recipient = answer.recipient or acs
    audience = answer.audience or f"{SITE}/saml/{answer.slug}/metadata/"
    irt = f' InResponseTo="{answer.in_response_to}"' if answer.in_response_to else ""
    status = "urn:oasis:names:tc:SAML:2.0:status:Success"
    persistent = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
    bearer = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
    password = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
    xml = f"""<samlp:Response xmlns:samlp="{SAMLP}" xmlns:saml="{SAML}"
 ID="{answer.response_id}" Version="2.0" IssueInstant="{_time(0)}" Destination="{acs}"{irt}>
<saml:Issuer>{answer.issuer}</saml:Issuer>
<samlp:Status><samlp:StatusCode Value="{status}"/></samlp:Status>
<saml:Assertion ID="{answer.assertion_id}" Version="2.0" IssueInstant="{_time(0)}">
<saml:Issuer>{answer.issuer}</saml:Issuer>
<saml:Subject><saml:NameID Format="{persistent}">{answer.name_id}</saml:NameID>
<saml:SubjectConfirmation Method="{bearer}"><saml:SubjectConfirmationData
 NotOnOrAfter="{_time(answer.not_on_or_after)}" Recipient="{recipient}"{irt}/>
</saml:SubjectConfirmation></saml:Subject>
<saml:Conditions NotBefore="{_time(answer.not_before)}" NotOnOrAfter="{_time(answer.not_on_or_after)}">
<saml:AudienceRestriction><saml:Audience>{audience}</saml:Audience></saml:AudienceRestriction>
</saml:Conditions>
<saml:AuthnStatement AuthnInstant="{_time(0)}" SessionIndex="_s1"><saml:AuthnContext>
<saml:AuthnContextClassRef>{password}</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>
<saml:AttributeStatement>
<saml:Attribute Name="email"><saml:AttributeValue>{answer.email}</saml:AttributeValue></saml:Attribute>
<saml:Attribute Name="displayName"><saml:AttributeValue>{answer.name}</saml:AttributeValue></saml:Attribute>
</saml:AttributeStatement></saml:Assertion></samlp:Response>"""
    return etree.fromstring(xml.replace("\n", " ").encode())


def sign(element: etree._Element, pair: KeyPair) -> etree._Element:
    """Enveloped RSA-SHA256 signature over ``element`` (by its ID), placed after its Issuer."""
    signature = xmlsec.template.create(element, xmlsec.Transform.EXCL_C14N, xmlsec.Transform.RSA_SHA256)
    element.insert(1, signature)
    reference = xmlsec.template.add_reference(signature, xmlsec.Transform.SHA256, uri="#" + element.get("ID"))
    xmlsec.template.add_transform(reference, xmlsec.Transform.ENVELOPED)
    xmlsec.template.add_transform(reference, xmlsec.Transform.EXCL_C14N)
    # The signer's certificate travels in KeyInfo, as IdPs send it; the site must ignore it.
    x509_data = xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(signature))
    xmlsec.template.x509_data_add_certificate(x509_data)
    context = xmlsec.SignatureContext()
    context.key = xmlsec.Key.from_memory(pair.key_pem.encode(), xmlsec.KeyFormat.PEM)
    context.key.load_cert_from_memory(pair.cert_pem.encode(), xmlsec.KeyFormat.PEM)
    context.register_id(element, "ID")
    context.sign(signature)
    return element


def assertion_of(tree: etree._Element) -> etree._Element:
    return tree.find(f"{{{SAML}}}Assertion")


def signed_response(answer: Answer, pair: KeyPair, *, what: str = "assertion") -> str:
    """The base64 SAMLResponse, its assertion (or the whole response) signed by ``pair``."""
    tree = response_tree(answer)
    if what in ("assertion", "both"):
        sign(assertion_of(tree), pair)
    if what in ("response", "both"):
        sign(tree, pair)
    return encode(tree)


def encode(tree: etree._Element) -> str:
    return base64.b64encode(etree.tostring(tree)).decode()


def request_id_from_redirect(location: str) -> str:
    """The AuthnRequest ID inside the HTTP-Redirect URL the site sent the browser to."""
    query = parse_qs(urlsplit(location).query)
    xml = zlib.decompress(base64.b64decode(query["SAMLRequest"][0]), -15)
    return etree.fromstring(xml).get("ID")


#: Made once per test run: RSA key generation is the slow part.
SP_KEYS = make_key_pair("linking_site SP")
IDP_KEYS = make_key_pair("Acme IdP 2026")
IDP_NEXT_KEYS = make_key_pair("Acme IdP 2027")
OTHER_KEYS = make_key_pair("Not Acme")


def use_sp_keys(settings) -> None:
    settings.SAML_SP_KEY = SP_KEYS.key_pem
    settings.SAML_SP_CERT = SP_KEYS.cert_pem


def begin(client, *, slug: str = "acme", next_url: str = "/settings/connections/", **post) -> str:
    """Press the company's button: the site redirects to the IdP; the AuthnRequest's ID is returned."""
    response = client.post("/login/saml/", {"idp": slug, "next": next_url, **post})
    assert response.status_code == 302, response.content[:300]
    assert response["Location"].startswith(IDP_SSO), response["Location"]
    return request_id_from_redirect(response["Location"])


def post_acs(
    client, saml_response: str, *, slug: str = "acme", relay_state: str | None = "/settings/connections/"
):
    """The browser's second, same-site POST of the IdP's answer (the first is the cross-site one)."""
    data = {"SAMLResponse": saml_response, "continued": "1"}
    if relay_state is not None:
        data["RelayState"] = relay_state
    return client.post(f"/saml/{slug}/acs/", data)


def refusal(response) -> str:
    """The refusal code shown on the page (``data-refusal``), after checking it is the refusal page."""
    assert response.status_code == 403, (response.status_code, response.content[:300])
    html = response.content.decode()
    assert "<h1>Sign-in refused</h1>" in html
    return html.split('data-refusal="', 1)[1].split('"', 1)[0]


def page_text(response) -> str:
    return html_module.unescape(response.content.decode())
