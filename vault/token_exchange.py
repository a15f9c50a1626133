"""The RFC 8693 token-exchange form of ``POST /api/v1/token``: reading the form, and answering in
RFC 8693 / RFC 6749 terms.

The agent key is the ``subject_token`` (or the ``Authorization`` header); the fields are checked by
``vault.api_input`` like the JSON form's; errors are the RFC 6749 codes ``vault.errors.ERROR_TABLE``
maps the site's codes to, with the site's own code in ``linking_site_error``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.views.decorators.debug import sensitive_variables

from . import api_input, errors
from .access import AccessToken

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
AGENT_KEY_TOKEN_TYPE = "urn:linking-site:params:oauth:token-type:agent-key"
FORM_CONTENT_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class UnsupportedGrantType(Exception):
    """Another ``grant_type``: RFC 6749's ``unsupported_grant_type``, which has no site code."""

    body = {"error": "unsupported_grant_type", "error_description": f"Use grant_type={TOKEN_EXCHANGE}."}


@dataclass(frozen=True, repr=False)
class Exchange:
    """A read form: the key it names (never shown in a ``repr``) and what it asks for."""

    subject_key: str | None
    fields: api_input.TokenRequest | None
    #: Why the fields were refused; answered only once the key is known to be good.
    refusal: errors.InvalidRequest | None = None


def is_exchange(request: HttpRequest) -> bool:
    return api_input.content_type(request) in FORM_CONTENT_TYPES


@sensitive_variables("header_key", "subject")
def read_form(request: HttpRequest, *, header_key: str | None) -> Exchange:
    """The form, checked: ``UnsupportedGrantType``/``InvalidRequest`` for its envelope (the grant
    and token types, the key), and the fields' refusal kept for after the key's check."""
    data = request.POST
    if data.get("grant_type") != TOKEN_EXCHANGE:
        raise UnsupportedGrantType()
    if data.get("subject_token_type") not in (None, "", AGENT_KEY_TOKEN_TYPE, ACCESS_TOKEN_TYPE):
        raise errors.InvalidRequest(f"subject_token_type must be {AGENT_KEY_TOKEN_TYPE}.")
    if data.get("requested_token_type") not in (None, "", ACCESS_TOKEN_TYPE):
        raise errors.InvalidRequest(f"requested_token_type must be {ACCESS_TOKEN_TYPE}.")
    subject = data.get("subject_token")
    if header_key and subject and header_key != subject:
        raise errors.InvalidRequest("The Authorization header and subject_token name different keys.")
    try:
        fields = api_input.TokenRequest(
            connection=api_input.connection(data.get("connection")),
            scopes=api_input.scopes((data.get("scope") or "").split()),
            min_ttl=api_input.min_ttl(api_input.form_int(data.get("min_ttl"))),
            login_hint=api_input.login_hint(data.get("login_hint")),
        )
    except errors.InvalidRequest as refusal:
        return Exchange(subject_key=subject or header_key, fields=None, refusal=refusal)
    return Exchange(subject_key=subject or header_key, fields=fields)


def error_body(error: errors.TokenVaultError) -> tuple[dict[str, Any], int]:
    """An error of the site as RFC 6749 answers it (``ERROR_TABLE``'s mapping), and the status."""
    rfc_code, status = errors.rfc_error(error.code)
    body: dict[str, Any] = {
        "error": rfc_code,
        "error_description": error.message,
        "linking_site_error": error.code,
        **error.details,
    }
    return body, status


@sensitive_variables("token")
def answer(token: AccessToken) -> dict[str, Any]:
    """RFC 8693 section 2.2.1's response."""
    return {
        "access_token": token.access_token,
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": "Bearer",
        "expires_in": token.expires_in,
        "scope": " ".join(token.scopes),
    }
