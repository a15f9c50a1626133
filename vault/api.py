"""The agent HTTP API (README "Agent API"): thin views over ``vault.issuing`` (the token),
``vault.connect`` (connect requests) and ``vault.status`` (connections).

Each view reads its input with ``vault.api_input`` (the JSON body and every field's check) or,
for the RFC 8693 form, ``vault.token_exchange``, and calls one service.

Every answer is JSON with ``Cache-Control: no-store``; errors carry a stable ``error`` code, a
description and, where the user can fix it, an ``authorize_url`` with a ``connect_request`` id.
The agent key is read from the ``Authorization`` header only (or, in the RFC 8693 form, from
``subject_token``), and every answer is scoped to that key's user.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.db import OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.http import http_date
from django.utils.module_loading import import_string
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from activity.recording import client_ip

from . import agents, api_input, connect, errors, issuing, token_exchange
from .limits import MAX_BODY_BYTES
from .openapi import document
from .status import connections_for_agent

logger = logging.getLogger(__name__)
# Names under which a key must never travel in a URL (logs, proxies and browser history keep them).
_KEY_PARAMS = {"key", "api_key", "apikey", "agent_key", "access_token", "token", "subject_token", "bearer"}


class MethodNotAllowed(errors.TokenVaultError):
    code = "invalid_request"
    status = 405
    default_message = "That method is not allowed here."


# What django.utils.cache.add_never_cache_headers writes, set directly: it is on every answer.
_NEVER_CACHE = "max-age=0, no-cache, no-store, must-revalidate, private"


_expires: tuple[int, str] = (0, "")


def _http_date_now() -> str:
    """``http_date()`` of this second, formatted once a second (it is on every answer)."""
    global _expires
    second = int(time.time())
    if _expires[0] != second:
        _expires = (second, http_date(second))
    return _expires[1]


def _respond(body: dict[str, Any], status: int = 200, *, retry_after: int | None = None) -> JsonResponse:
    response = JsonResponse(body, status=status)
    response["Cache-Control"] = _NEVER_CACHE
    response["Expires"] = _http_date_now()
    response["Pragma"] = "no-cache"
    if retry_after is not None:
        response["Retry-After"] = str(int(retry_after))
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return response


def _error_response(error: errors.TokenVaultError) -> JsonResponse:
    return _respond(error.as_dict(), error.status, retry_after=getattr(error, "retry_after", None))


# Bodies Django's parsers refuse (too many fields or files, a broken multipart body, an unknown
# charset) and JSON nested deeper than Python's recursion limit: the caller's fault, answered 400.
_UNPARSABLE = (SuspiciousOperation, MultiPartParserError, RecursionError, UnicodeError, LookupError)


def api_view(*methods: str) -> Callable:
    """JSON-only, CSRF-exempt (no cookies are used), method- and size-checked, errors as JSON.

    Every answer under /api/ is JSON, whatever went wrong: an agent parses the body of a 400 or a
    500 as surely as a 200 (``json_error_handler`` covers what fails outside a view).
    """

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @csrf_exempt
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                if request.method not in methods:
                    raise MethodNotAllowed(f"Use {' or '.join(methods)}.")
                length = request.META.get("CONTENT_LENGTH") or "0"
                if not length.isdigit() or int(length) > MAX_BODY_BYTES:
                    raise errors.InvalidRequest(f"The request body must be at most {MAX_BODY_BYTES} bytes.")
                return view(request, *args, **kwargs)
            except errors.TokenVaultError as error:
                response = _error_response(error)
                if isinstance(error, MethodNotAllowed):
                    response["Allow"] = ", ".join(methods)
                return response
            except _UNPARSABLE:
                return _error_response(errors.InvalidRequest("The request body could not be read."))
            except OperationalError:
                # A deadlock, a lock or statement timeout, a lost connection (issue 20.2): the
                # database will answer again, so the agent is told when to retry, in JSON.
                logger.warning("Database unavailable during %s (OperationalError)", request.path)
                return _error_response(errors.DatabaseBusy())
            # Anything else goes on to Django (logged, mailed to ADMINS, got_request_exception)
            # and is answered by ``json_error_handler(500)``: JSON under /api/.

        return wrapper

    return decorator


def json_error_handler(status: int) -> Callable[..., HttpResponse]:
    """``handler400/404/500`` for requests that fail before or outside a view (middleware, URL
    resolution): JSON under /api/, Django's usual pages elsewhere."""
    page = {400: defaults.bad_request, 403: defaults.permission_denied, 404: defaults.page_not_found}
    bodies = {
        400: ("invalid_request", "The request could not be read."),
        403: ("access_denied", "This request is not allowed."),
        404: ("not_found", errors.NotFound.default_message),
        500: ("server_error", "Something went wrong on our side."),
    }

    def handler(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
        if request.path.startswith("/api/"):
            code, description = bodies[status]
            return _respond({"error": code, "error_description": description}, status)
        if status == 500:
            return defaults.server_error(request)
        return page[status](request, exception)

    return handler


def _refuse_key_in_url(request: HttpRequest) -> None:
    # Most requests have no query string at all: then there is no QueryDict to build.
    if request.META.get("QUERY_STRING") and any(name.lower() in _KEY_PARAMS for name in request.GET):
        raise errors.InvalidRequest(
            "Send the agent key in the Authorization header (Bearer), never in the URL; "
            "a key that was put in a URL should be revoked."
        )


def _bearer(request: HttpRequest) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


@sensitive_variables("raw_key")
def _authenticate(request: HttpRequest, raw_key: str | None) -> agents.AgentKey:
    """The key, after the per-address failure limit and the per-key and per-user rate limits."""
    return agents.authenticate_request(raw_key, ip_address=client_ip(request))


@sensitive_post_parameters("subject_token")
@api_view("POST")
@sensitive_variables("raw_key", "token")
def token_endpoint(request: HttpRequest) -> HttpResponse:
    """``POST /api/v1/token``: JSON (README "Agent API") or an RFC 8693 token-exchange form."""
    _refuse_key_in_url(request)
    if api_input.json_sent_as_form(request):
        _authenticate(request, _bearer(request))  # a bad key is answered first, as on every endpoint
        raise errors.InvalidRequest(
            "The body is JSON but its Content-Type says a form (curl -d sends one): "
            "send it with Content-Type: application/json."
        )
    if token_exchange.is_exchange(request):
        return _token_exchange(request)
    raw_key = _bearer(request)
    try:
        asked = api_input.token_request(api_input.json_body(request))
    except errors.InvalidRequest:
        _authenticate(request, raw_key)  # a bad key is answered first, as on every endpoint
        raise
    token = issuing.issue_token(raw_key=raw_key, ip_address=client_ip(request), **asked.as_kwargs())
    return _respond(
        {
            "access_token": token.access_token,
            "token_type": "Bearer",
            "expires_in": token.expires_in,
            "expires_at": token.expires_at.isoformat().replace("+00:00", "Z") if token.expires_at else None,
            "scope": " ".join(token.scopes),
            "connection": token.connection,
            "account": token.account,
        }
    )


@sensitive_variables("exchange", "token")
def _token_exchange(request: HttpRequest) -> HttpResponse:
    """RFC 8693 form (``vault.token_exchange``): answers and errors per RFC 8693/6749."""
    for exchanger in getattr(settings, "VAULT_SUBJECT_TOKEN_EXCHANGERS", ()):
        # A token the site's authorization server issued (not an agent key) is its own to exchange;
        # named in settings because the vault never imports authserver.
        answered = import_string(exchanger)(request)
        if answered is not None:
            body, status = answered
            return _respond(body, status, retry_after=body.get("retry_after"))
    try:
        exchange = token_exchange.read_form(request, header_key=_bearer(request))
        if exchange.refusal is not None:
            _authenticate(request, exchange.subject_key)  # a bad key is answered first
            raise exchange.refusal
        token = issuing.issue_token(
            raw_key=exchange.subject_key, ip_address=client_ip(request), **exchange.fields.as_kwargs()
        )
    except token_exchange.UnsupportedGrantType as unsupported:
        return _respond(unsupported.body, 400)
    except errors.TokenVaultError as error:
        body, status = token_exchange.error_body(error)
        return _respond(body, status, retry_after=getattr(error, "retry_after", None))
    return _respond(token_exchange.answer(token))


@api_view("GET")
def connections_endpoint(request: HttpRequest) -> HttpResponse:
    """``GET /api/v1/connections``: the user's identities this key may see, never tokens."""
    _refuse_key_in_url(request)
    key = _authenticate(request, _bearer(request))
    return _respond({"connections": connections_for_agent(user_id=key.user_id, providers=key.providers)})


@api_view("POST")
def connect_requests_endpoint(request: HttpRequest) -> HttpResponse:
    """``POST /api/v1/connect-requests``: ask the user to link (or grant more to) a provider."""
    _refuse_key_in_url(request)
    key = _authenticate(request, _bearer(request))
    body = api_input.json_body(request)
    row, created = connect.request_connection(
        agent_key=key,
        connection=api_input.connection(body.get("connection")),
        scopes=api_input.scopes(body.get("scopes", api_input.MISSING)),
        reason="requested",
    )
    return _respond(connect.as_dict(row), 201 if created else 200)


@api_view("GET")
def connect_request_endpoint(request: HttpRequest, request_id: str) -> HttpResponse:
    """``GET /api/v1/connect-requests/<id>``: poll a request this key made."""
    _refuse_key_in_url(request)
    key = _authenticate(request, _bearer(request))
    return _respond(connect.as_dict(connect.get_for_agent(agent_key=key, request_id=request_id)))


@api_view("GET", "POST", "PUT", "PATCH", "DELETE")
def not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    raise errors.NotFound()


@api_view("GET")
def openapi_document(request: HttpRequest) -> HttpResponse:
    response = JsonResponse(document(request))
    response["Cache-Control"] = "public, max-age=300"
    return response
