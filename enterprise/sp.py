"""This site as a SAML service provider: its key and certificates, and python3-saml's settings.

The key and certificate come from the environment (``SAML_SP_KEY``, ``SAML_SP_CERT``), never the
database. ``SAML_SP_CERT_NEXT`` is published in the metadata next to the current certificate, so
IdP administrators can import it before a rotation (then it becomes ``SAML_SP_CERT`` with its key).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.urls import reverse
from onelogin.saml2.constants import OneLogin_Saml2_Constants

from .models import EnterpriseConnection


class SpNotConfigured(RuntimeError):
    """The SP key or certificate is missing: no request can be signed."""


def _pem(value: str) -> str:
    # Environment files often hold a PEM on one line with literal "\n".
    return (value or "").replace("\\n", "\n").strip()


def sp_key_and_certificates() -> tuple[str, str, str]:
    """``(key, current certificate, next certificate or "")``; ``SpNotConfigured`` without them."""
    key = _pem(getattr(settings, "SAML_SP_KEY", ""))
    cert = _pem(getattr(settings, "SAML_SP_CERT", ""))
    if not key or not cert:
        raise SpNotConfigured("SAML_SP_KEY and SAML_SP_CERT are not set.")
    return key, cert, _pem(getattr(settings, "SAML_SP_CERT_NEXT", ""))


def absolute(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def sp_entity_id(connection: EnterpriseConnection) -> str:
    """The SP's entity id for one connection: its metadata URL (stable, and unique per IdP)."""
    return absolute(reverse("enterprise:metadata", args=[connection.slug]))


def acs_url(connection: EnterpriseConnection) -> str:
    return absolute(reverse("enterprise:acs", args=[connection.slug]))


def request_data(path: str, post: dict[str, str] | None = None) -> dict[str, Any]:
    """python3-saml's view of the request, built from SITE_URL (never the Host header), so the
    Destination and Recipient checks compare with the URL the IdP was told."""
    site = urlsplit(settings.SITE_URL)
    return {
        "https": "on" if site.scheme == "https" else "off",
        "http_host": site.netloc,
        "script_name": path,
        "get_data": {},
        "post_data": dict(post or {}),
    }


def saml_settings(connection: EnterpriseConnection) -> dict[str, Any]:
    """python3-saml settings for ``connection``: strict, signatures checked against the
    configured certificates only, deprecated algorithms refused."""
    key, cert, next_cert = sp_key_and_certificates()
    sp: dict[str, Any] = {
        "entityId": sp_entity_id(connection),
        "assertionConsumerService": {
            "url": acs_url(connection),
            "binding": OneLogin_Saml2_Constants.BINDING_HTTP_POST,
        },
        "NameIDFormat": OneLogin_Saml2_Constants.NAMEID_UNSPECIFIED,
        "x509cert": cert,
        "privateKey": key,
    }
    if next_cert:
        sp["x509certNew"] = next_cert
    return {
        "strict": True,
        "debug": False,
        "sp": sp,
        "idp": {
            "entityId": connection.entity_id,
            "singleSignOnService": {
                "url": connection.sso_url,
                "binding": OneLogin_Saml2_Constants.BINDING_HTTP_REDIRECT,
            },
            # Only the certificates staff configured; never one carried inside the response.
            "x509certMulti": {"signing": list(connection.signing_certificates)},
        },
        "security": {
            "authnRequestsSigned": True,
            "signMetadata": True,
            # Either signature is enough (python3-saml refuses a response with neither:
            # NO_SIGNATURE_FOUND); requiring one kind would refuse IdPs that sign only the other.
            # Wrapping attacks are refused by its check that the signed elements are exactly the
            # Response and/or its one Assertion.
            "wantAssertionsSigned": False,
            "wantMessagesSigned": False,
            "wantNameId": True,
            "wantAttributeStatement": False,
            "requestedAuthnContext": False,
            "rejectDeprecatedAlgorithm": True,
            # Intranet IdPs and test hosts have single-label names (https://sso/, testserver).
            "allowSingleLabelDomains": True,
            "signatureAlgorithm": OneLogin_Saml2_Constants.RSA_SHA256,
            "digestAlgorithm": OneLogin_Saml2_Constants.SHA256,
        },
    }
