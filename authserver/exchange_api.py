"""The token exchange over HTTP: at the advertised token endpoint and at the vault's ``/api/v1/token``.

Both read the same form (RFC 8693: ``subject_token``, ``subject_token_type``, ``connection``,
``scope``, ``login_hint``, ``resource``) and answer the same way: the RFC 8693 response, or the
vault's errors in RFC 6749 terms (``vault.token_exchange.error_body``) with ``authorize_url`` and
``connect_request`` where the person can fix it, and ``retry_after`` (429 ``rate_limited``, 503).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.views.decorators.debug import sensitive_variables

from activity.recording import client_ip
from vault import api_input, errors, keyformat, token_exchange

from . import clients
from .exchange import ACCESS_TOKEN_TYPE, REFRESH_TOKEN_TYPE, ExchangeRefused, count_refusal, exchange

TOKEN_EXCHANGE = token_exchange.TOKEN_EXCHANGE


@sensitive_variables("token")
def exchange_at_token_endpoint(request: HttpRequest) -> tuple[dict[str, Any], int]:
    """(body, status) for an RFC 8693 form posted by an application."""
    data = request.POST
    try:
        caller = clients.authenticate(request, allow_public=True)
    except clients.ClientAuthFailed:
        try:
            count_refusal(ip_address=client_ip(request))
        except errors.TokenVaultError as error:
            return error_body(error)
        return {"error": "invalid_client", "error_description": "Client authentication failed."}, 401
    try:
        if data.get("requested_token_type") not in (None, "", ACCESS_TOKEN_TYPE):
            raise errors.InvalidRequest(f"requested_token_type must be {ACCESS_TOKEN_TYPE}.")
        token = exchange(
            caller=caller,
            subject_token=data.get("subject_token", ""),
            subject_token_type=data.get("subject_token_type", ""),
            connection=api_input.connection(data.get("connection")),
            scopes=api_input.scopes((data.get("scope") or "").split()),
            login_hint=api_input.login_hint(data.get("login_hint")),
            resource=str(data.get("resource") or "")[:2000],
            ip_address=client_ip(request),
        )
    except ExchangeRefused as refused:
        return refused.body, refused.status
    except errors.TokenVaultError as error:
        return error_body(error)
    return token_exchange.answer(token), 200


def error_body(error: errors.TokenVaultError) -> tuple[dict[str, Any], int]:
    """The vault's RFC 6749 error shape, with ``retry_after`` in the body when the error has one:
    (body, status) is all an exchanger returns, so the endpoint sets ``Retry-After`` from it."""
    body, status = token_exchange.error_body(error)
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        body["retry_after"] = int(retry_after)
    return body, status


def exchange_site_token(request: HttpRequest) -> tuple[dict[str, Any], int] | None:
    """``VAULT_SUBJECT_TOKEN_EXCHANGERS``: a site-issued subject token posted to ``/api/v1/token``
    is exchanged here; an agent key (or any other form) is left to the vault (None)."""
    data = request.POST
    if data.get("grant_type") != TOKEN_EXCHANGE:
        return None
    if data.get("subject_token_type") not in (ACCESS_TOKEN_TYPE, REFRESH_TOKEN_TYPE):
        return None
    if keyformat.is_well_formed(data.get("subject_token") or ""):
        return None
    return exchange_at_token_endpoint(request)
