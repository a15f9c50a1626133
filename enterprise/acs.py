"""Checking a SAML response at the ACS: every rule, before anything is linked or created.

python3-saml (strict) checks the signature against the connection's configured certificates only,
the signed-element shape (signature wrapping), Audience, Destination, Recipient, Issuer and the
times. This module adds what is about this browser and this site: the response must answer the
AuthnRequest this session sent (``InResponseTo``) and be finished by the user who started it, an
assertion is accepted once (a replay store in the cache), RelayState is a same-site path, the
clock skew is small, and IdP-initiated sign-in is refused unless staff allowed it.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from lxml.etree import XMLSyntaxError
from onelogin.saml2.errors import OneLogin_Saml2_Error, OneLogin_Saml2_ValidationError
from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.utils import OneLogin_Saml2_Utils
from onelogin.saml2.xml_utils import OneLogin_Saml2_XML
from xmlsec import Error as XMLSecError

from accounts import flow_state
from accounts.flow_state import SamlRequest, Session
from accounts.redirects import safe_next_url

from .models import EnterpriseConnection
from .refusals import LIBRARY_CODES, SamlRefused
from .sp import SpNotConfigured, acs_url, request_data, saml_settings

#: How long an AuthnRequest may take to be answered (a person typing a password, a second factor).
REQUEST_MAX_AGE_SECONDS = 15 * 60
#: Clock skew allowed on the assertion's NotBefore / NotOnOrAfter (python3-saml allows 300 s).
CLOCK_SKEW_SECONDS = 60
_REPLAY_PREFIX = "enterprise:saml-assertion:"
_ASSERTION = "/samlp:Response/saml:Assertion"


@dataclass(frozen=True)
class ValidResponse:
    """A response that passed every rule: who the IdP says it is, and what it answered."""

    connection: EnterpriseConnection
    name_id: str
    attributes: dict[str, list[str]]
    session_index: str | None
    solicited: bool
    relay_state: str


def _skew() -> int:
    return int(getattr(settings, "SAML_CLOCK_SKEW_SECONDS", CLOCK_SKEW_SECONDS))


def _in_response_to_values(response: OneLogin_Saml2_Response) -> list[str]:
    """Every InResponseTo the response carries: the Response's and each bearer confirmation's
    (the Response's is outside the signature when only the assertion is signed)."""
    document = response.decrypted_document if response.encrypted else response.document
    values = [response.get_in_response_to()]
    for data in OneLogin_Saml2_XML.query(
        document, _ASSERTION + "/saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData"
    ):
        values.append(data.get("InResponseTo"))
    return [value for value in values if value]


def _check_conditions_skew(response: OneLogin_Saml2_Response) -> float:
    """Refuse an assertion outside its Conditions window by more than the small skew; the
    window's end (epoch seconds) tells the replay store how long to remember it."""
    document = response.decrypted_document if response.encrypted else response.document
    now = time.time()
    ends = []
    for conditions in OneLogin_Saml2_XML.query(document, _ASSERTION + "/saml:Conditions"):
        not_before = conditions.get("NotBefore")
        not_on_or_after = conditions.get("NotOnOrAfter")
        if not_before and OneLogin_Saml2_Utils.parse_SAML_to_time(not_before) > now + _skew():
            raise SamlRefused("not_yet_valid")
        if not_on_or_after:
            end = OneLogin_Saml2_Utils.parse_SAML_to_time(not_on_or_after)
            if end + _skew() <= now:
                raise SamlRefused("expired")
            ends.append(end)
    return min(ends) if ends else now + REQUEST_MAX_AGE_SECONDS


def _accept_once(connection: EnterpriseConnection, assertion_id: str, until: float) -> None:
    """Remember the assertion until it expires (plus skew); a second use is a replay."""
    digest = hashlib.sha256(f"{connection.pk}:{assertion_id}".encode()).hexdigest()
    timeout = max(60, min(int(until - time.time()) + _skew(), 24 * 3600))
    if not cache.add(_REPLAY_PREFIX + digest, 1, timeout=timeout):
        raise SamlRefused("replayed")


def _parse_and_validate(connection: EnterpriseConnection, post: dict[str, str], request_id: str | None):
    try:
        config = OneLogin_Saml2_Settings(saml_settings(connection))
    except SpNotConfigured:
        raise SamlRefused("not_configured") from None
    except OneLogin_Saml2_Error:
        raise SamlRefused("not_configured") from None
    response = None
    try:
        response = OneLogin_Saml2_Response(config, post["SAMLResponse"])
        response.is_valid(request_data(_acs_path(connection), post), request_id, raise_exceptions=True)
    except OneLogin_Saml2_ValidationError as error:
        code = LIBRARY_CODES.get(error.code, "malformed")
        if response is not None and error.code == OneLogin_Saml2_ValidationError.WRONG_SUBJECTCONFIRMATION:
            code = _why_no_confirmation(response) or code
        raise SamlRefused(code) from None
    except (OneLogin_Saml2_Error, XMLSyntaxError, XMLSecError, ValueError, TypeError, AttributeError):
        raise SamlRefused("malformed") from None
    return response


def _why_no_confirmation(response: OneLogin_Saml2_Response) -> str | None:
    """python3-saml says only "no valid SubjectConfirmation": name the time when that is why."""
    document = response.decrypted_document if response.encrypted else response.document
    now = time.time()
    for data in OneLogin_Saml2_XML.query(
        document, _ASSERTION + "/saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData"
    ):
        end, start = data.get("NotOnOrAfter"), data.get("NotBefore")
        if end and OneLogin_Saml2_Utils.parse_SAML_to_time(end) <= now:
            return "expired"
        if start and OneLogin_Saml2_Utils.parse_SAML_to_time(start) > now:
            return "not_yet_valid"
    return None


def _acs_path(connection: EnterpriseConnection) -> str:
    return acs_url(connection)[len(settings.SITE_URL) :]


def check_response(
    *, session: Session, user_id: int | None, slug: str, post: dict[str, Any]
) -> ValidResponse:
    """Every rule of the ACS for one POST; ``SamlRefused`` names the first one broken.

    The pending AuthnRequest of this session is used up whatever the outcome, so a response is
    never tried twice against it.
    """
    connection = EnterpriseConnection.objects.filter(slug=slug).first()
    if connection is None:
        raise SamlRefused("unknown_connection")
    company = connection.name
    try:
        return _check(connection, session=session, user_id=user_id, post=post)
    except SamlRefused as refused:
        refused.company = company
        raise


def _check(
    connection: EnterpriseConnection, *, session: Session, user_id: int | None, post: dict[str, Any]
) -> ValidResponse:
    pending: SamlRequest | None = flow_state.pop_saml_request(session, connection.slug)
    if not connection.enabled:
        raise SamlRefused("connection_disabled")
    if not isinstance(post.get("SAMLResponse"), str) or not post["SAMLResponse"]:
        raise SamlRefused("missing_response")
    relay_state = post.get("RelayState") or ""
    if not isinstance(relay_state, str) or (
        relay_state and safe_next_url(relay_state, default="") != relay_state
    ):
        raise SamlRefused("relay_state")
    response = _parse_and_validate(connection, post, pending.request_id if pending else None)
    answered = _in_response_to_values(response)
    if pending is not None:
        if not answered or any(value != pending.request_id for value in answered):
            raise SamlRefused("wrong_request")
        if pending.user_id != user_id:
            raise SamlRefused("user_mismatch")
        if time.time() - pending.started_at > REQUEST_MAX_AGE_SECONDS:
            raise SamlRefused("request_expired")
    elif answered:
        # An answer to a request this session did not send (or already used): another browser's.
        raise SamlRefused("other_browser")
    elif not connection.allow_idp_initiated:
        raise SamlRefused("unsolicited")
    elif user_id is not None:
        raise SamlRefused("idp_initiated_signed_in")
    until = _check_conditions_skew(response)
    name_id = response.get_nameid()
    if not name_id:
        raise SamlRefused("no_subject")
    _accept_once(connection, response.get_assertion_id() or response.get_id() or name_id, until)
    return ValidResponse(
        connection=connection,
        name_id=str(name_id),
        attributes=response.get_attributes(),
        session_index=response.get_session_index(),
        solicited=pending is not None,
        relay_state=relay_state,
    )
