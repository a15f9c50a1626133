"""System checks: xmlsec and lxml must use the same libxml2, or signature checks fail oddly.

Each wheel can bundle its own libxml2; when the two differ, xmlsec verifies a tree lxml built with
another library, the classic source of "signature invalid" on good responses (or worse). This
fails ``manage.py check`` with one line instead.
"""

from __future__ import annotations

import lxml.etree
import xmlsec
from django.conf import settings
from django.core.checks import Error, register


def libxml2_versions() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(xmlsec's, lxml's)`` libxml2 versions."""
    return tuple(xmlsec.get_libxml_version()), tuple(lxml.etree.LIBXML_VERSION)


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


@register()
def libxml2_agrees(app_configs, **kwargs) -> list[Error]:
    xmlsec_version, lxml_version = libxml2_versions()
    if xmlsec_version == lxml_version:
        return []
    return [
        Error(
            f"xmlsec uses libxml2 {_dotted(xmlsec_version)} but lxml uses {_dotted(lxml_version)}: "
            "SAML signatures cannot be checked reliably.",
            hint="Install xmlsec and lxml built against the same libxml2 (see requirements.lock).",
            id="enterprise.E001",
        )
    ]


@register()
def sp_key_pair(app_configs, **kwargs) -> list[Error]:
    """Both halves of the SP key pair, or neither (company sign-in then stays unavailable)."""
    key = bool(getattr(settings, "SAML_SP_KEY", ""))
    cert = bool(getattr(settings, "SAML_SP_CERT", ""))
    if key == cert:
        return []
    return [
        Error(
            "Only one of SAML_SP_KEY and SAML_SP_CERT is set.",
            hint="Set both (the SP's private key and its certificate), or neither.",
            id="enterprise.E002",
        )
    ]
