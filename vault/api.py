"""The agent HTTP API (DESIGN.md "Agent HTTP API"): thin views over ``vault.agents``,
``vault.connect`` and ``vault.get_access_token``.

Every answer is JSON with ``Cache-Control: no-store``; errors carry a stable ``error`` code, a
description and, where the user can fix it, an ``authorize_url`` with a ``connect_request`` id.
The agent key is read from the ``Authorization`` header only (or, in the RFC 8693 form, from
``subject_token``), and every answer is scoped to that key's user.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import SuspiciousOperation
from django.db import OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.http import http_date
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from accounts.activity import client_ip
from accounts.providers import is_configured

from . import agents, connect, errors, issuing
from . import scopes as scope_rules
from .status import connections_for_agent

logger = logging.getLogger(__name__)
MAX_BODY_BYTES = 16 * 1024
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
AGENT_KEY_TOKEN_TYPE = "urn:linking-site:params:oauth:token-type:agent-key"
# Names under which a key must never travel in a URL (logs, proxies and browser history keep them).
_KEY_PARAMS = {"key", "api_key", "apikey", "agent_key", "access_token", "token", "subject_token", "bearer"}


class MethodNotAllowed(errors.TokenVaultError):
    code = "invalid_request"
    status = 405
    default_message = "That method is not allowed here."


# What django.utils.cache.add_never_cache_headers writes, set directly: it is on every answer.
_NEVER_CACHE = "max-age=0, no-cache, no-store, must-revalidate, private"


def _respond(body: dict[str, Any], status: int = 200, *, retry_after: int | None = None) -> JsonResponse:
    response = JsonResponse(body, status=status)
    response["Cache-Control"] = _NEVER_CACHE
    response["Expires"] = http_date()
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
    from django.views import defaults

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
    if any(name.lower() in _KEY_PARAMS for name in request.GET):
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


def _json_body(request: HttpRequest) -> dict[str, Any]:
    content_type = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise errors.InvalidRequest("Send a JSON body with Content-Type: application/json.")
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: a small body of thousands of nested lists is still not a JSON object.
        raise errors.InvalidRequest("The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise errors.InvalidRequest("The body must be a JSON object.")
    return body


def _connection(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > 64:
        raise errors.InvalidRequest("'connection' must be a provider name such as \"github\".")
    if not is_configured(value):
        raise errors.InvalidRequest(f"Unknown connection {value!r}; /api/v1/openapi.json lists the names.")
    return value


_MISSING = object()


def _scopes(value: object) -> list[str]:
    """JSON ``scopes``: a list of names, exactly as the OpenAPI document says."""
    if value is _MISSING:
        return []
    if not isinstance(value, list) or not all(scope_rules.is_scope_name(s) for s in value):
        raise errors.InvalidRequest(
            "'scopes' must be a list of scope names (printable characters, no spaces or quotes)."
        )
    if len(value) > 50:
        raise errors.InvalidRequest("At most 50 scopes.")
    return scope_rules.normalise_requested(value)


def _account(value: object) -> int | None:
    if value is _MISSING:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        raise errors.InvalidRequest("'account' must be an identity id (a positive integer).")
    return value


def _min_ttl(value: object) -> int:
    if value is _MISSING:
        return 60
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 3600:
        raise errors.InvalidRequest("'min_ttl' must be a whole number of seconds from 0 to 3600.")
    return value


@sensitive_post_parameters("subject_token")
@api_view("POST")
@sensitive_variables("raw_key", "token")
def token_endpoint(request: HttpRequest) -> HttpResponse:
    """``POST /api/v1/token``: JSON (DESIGN.md) or an RFC 8693 token-exchange form."""
    _refuse_key_in_url(request)
    content_type = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return _token_exchange(request)
    raw_key = _bearer(request)
    try:
        body = _json_body(request)
        asked = {
            "connection": _connection(body.get("connection")),
            "scopes": _scopes(body.get("scopes", _MISSING)),
            "account": _account(body.get("account", _MISSING)),
            "min_ttl": _min_ttl(body.get("min_ttl", _MISSING)),
        }
    except errors.InvalidRequest:
        _authenticate(request, raw_key)  # a bad key is answered first, as on every endpoint
        raise
    token = issuing.issue_token(raw_key=raw_key, ip_address=client_ip(request), **asked)
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


# RFC 6749 / 8693 error codes for the vault's codes, with the HTTP status for each.
_RFC_ERRORS: dict[str, tuple[str, int]] = {
    "invalid_token": ("invalid_request", 400),
    "invalid_request": ("invalid_request", 400),
    "access_denied": ("invalid_target", 400),
    "connection_required": ("invalid_target", 400),
    "insufficient_scope": ("invalid_scope", 400),
    "reauthorization_required": ("invalid_grant", 400),
    "rate_limited": ("temporarily_unavailable", 429),
    "not_found": ("invalid_request", 400),
}


def _form_int(value: str | None) -> object:
    """A form field as a whole number when it is one; otherwise as sent (refused by its check)."""
    if value is None or value == "":
        return _MISSING
    try:
        return int(value)
    except ValueError:
        return value


def _login_hint(value: str | None) -> str:
    if value and len(value) > 254:
        raise errors.InvalidRequest("'login_hint' must be at most 254 characters.")
    return value or ""


def _rfc_error(error: errors.TokenVaultError) -> JsonResponse:
    rfc_code, status = _RFC_ERRORS.get(error.code, ("temporarily_unavailable", 503))
    body: dict[str, Any] = {
        "error": rfc_code,
        "error_description": error.message,
        "linking_site_error": error.code,
        **error.details,
    }
    return _respond(body, status, retry_after=getattr(error, "retry_after", None))


@sensitive_variables("header_key", "subject", "token")
def _token_exchange(request: HttpRequest) -> HttpResponse:
    """RFC 8693 form: the agent key is the ``subject_token``; answers and errors per RFC 8693/6749."""
    data = request.POST
    try:
        if data.get("grant_type") != TOKEN_EXCHANGE:
            return _respond(
                {"error": "unsupported_grant_type", "error_description": f"Use grant_type={TOKEN_EXCHANGE}."},
                400,
            )
        subject_type = data.get("subject_token_type")
        if subject_type not in (None, "", AGENT_KEY_TOKEN_TYPE, ACCESS_TOKEN_TYPE):
            raise errors.InvalidRequest(f"subject_token_type must be {AGENT_KEY_TOKEN_TYPE}.")
        requested_type = data.get("requested_token_type")
        if requested_type not in (None, "", ACCESS_TOKEN_TYPE):
            raise errors.InvalidRequest(f"requested_token_type must be {ACCESS_TOKEN_TYPE}.")
        header_key = _bearer(request)
        subject = data.get("subject_token") or header_key
        if header_key and data.get("subject_token") and header_key != data.get("subject_token"):
            raise errors.InvalidRequest("The Authorization header and subject_token name different keys.")
        try:
            asked = {
                "connection": _connection(data.get("connection")),
                "scopes": _scopes((data.get("scope") or "").split()),
                "min_ttl": _min_ttl(_form_int(data.get("min_ttl"))),
                "login_hint": _login_hint(data.get("login_hint")),
            }
        except errors.InvalidRequest:
            _authenticate(request, subject)  # a bad key is answered first
            raise
        token = issuing.issue_token(raw_key=subject, ip_address=client_ip(request), **asked)
    except errors.TokenVaultError as error:
        return _rfc_error(error)
    return _respond(
        {
            "access_token": token.access_token,
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": "Bearer",
            "expires_in": token.expires_in,
            "scope": " ".join(token.scopes),
        }
    )


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
    body = _json_body(request)
    row, created = connect.request_connection(
        agent_key=key,
        connection=_connection(body.get("connection")),
        scopes=_scopes(body.get("scopes", _MISSING)),
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
    from .openapi import document

    response = JsonResponse(document(request))
    response["Cache-Control"] = "public, max-age=300"
    return response
