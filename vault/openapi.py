"""The OpenAPI 3 document of the agent API, served at ``/api/v1/openapi.json``.

Kept by hand next to the views it describes; ``tests/test_agent_openapi.py`` checks the running
API against it with schemathesis. The error codes, their statuses and descriptions come from
``vault.errors.ERROR_TABLE``, and the bounds from ``vault.limits`` and ``accounts.scopes``, so the
document cannot drift from what the views answer.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from accounts.providers import token_providers
from accounts.scopes import MAX_SCOPE_LENGTH, MAX_SCOPES, SCOPE_NAME_RULE

from .errors import ERROR_TABLE
from .limits import MAX_LOGIN_HINT_LENGTH, MAX_MIN_TTL
from .token_exchange import TOKEN_EXCHANGE

#: The token-exchange form's RFC 6749 codes: those the table maps to, and a wrong ``grant_type``'s.
_RFC_CODES = sorted({row.rfc_error for row in ERROR_TABLE.values()} | {"unsupported_grant_type"})

_ERROR = {
    "type": "object",
    "required": ["error", "error_description"],
    "properties": {
        "error": {
            "type": "string",
            "enum": sorted(set(ERROR_TABLE) | set(_RFC_CODES)),
            "description": "A stable code (see the descriptions of the responses); RFC 6749 codes in the "
            "RFC 8693 form.",
        },
        "error_description": {"type": "string"},
        "linking_site_error": {
            "type": "string",
            "enum": list(ERROR_TABLE),
            "description": "RFC 8693 form only: the site's own code.",
        },
        "authorize_url": {"type": "string", "format": "uri"},
        "connect_request": {"type": "string"},
        "required_scopes": {"type": "array", "items": {"type": "string"}},
        "granted_scopes": {"type": "array", "items": {"type": "string"}},
        "reason": {
            "type": "string",
            "description": "With `access_denied`: `grant_exceeds_key_scopes` when the account granted more than the key's scope limit and the provider cannot narrow a token.",
        },
        "allowed_scopes": {"type": "array", "items": {"type": "string"}},
        "scopes_beyond_limit": {"type": "array", "items": {"type": "string"}},
        "retry_after": {"type": "integer"},
        "connection": {"type": "string"},
    },
}


def _error_text(status: int) -> str:
    """What the codes answered with ``status`` mean (``ERROR_TABLE``)."""
    return " ".join(
        f"`{row.code}`: {row.description}" for row in ERROR_TABLE.values() if status in row.statuses
    )


def _error_responses(*statuses: int) -> dict[str, Any]:
    retry_after = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}
    return {
        str(status): {
            "description": _error_text(status),
            **(
                {"headers": retry_after}
                if any(row.retry_after and status in row.statuses for row in ERROR_TABLE.values())
                else {}
            ),
            "content": _json({"$ref": "#/components/schemas/Error"}),
        }
        for status in statuses
    }


_MIN_TTL = {
    "type": "integer",
    "minimum": 0,
    "maximum": MAX_MIN_TTL,
    "description": "Seconds the token must stay valid; refreshed first if it would not. When longer than the "
    "provider's tokens live (Google: 3599 s), a token is not refreshed again until it is 5 minutes (or half "
    "its lifetime) old: the answer's `expires_in` is then shorter than `min_ttl`.",
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def document(request: HttpRequest | None = None) -> dict[str, Any]:
    connections = [p.name for p in token_providers()] or ["github"]
    connection = {
        "type": "string",
        "enum": connections,
        "description": "Provider (social-auth backend) name.",
    }
    scope_name = {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_SCOPE_LENGTH,
        "pattern": r"^[\x21\x23-\x5b\x5d-\x7e]+$",
        "description": f"An RFC 6749 scope token: {SCOPE_NAME_RULE}.",
    }
    scopes = {"type": "array", "items": scope_name, "maxItems": MAX_SCOPES}
    connect_request = {
        "type": "object",
        "required": ["id", "status", "authorize_url", "connection", "scopes", "expires_at"],
        "properties": {
            "id": {"type": "string"},
            "status": {"type": "string", "enum": ["pending", "completed", "declined", "expired"]},
            "authorize_url": {"type": "string", "format": "uri"},
            "connection": {"type": "string"},
            "scopes": {"type": "array", "items": {"type": "string"}},
            "expires_at": {"type": "string", "format": "date-time"},
        },
    }
    # Every endpoint checks the key and counts it against the limits (503: the limits store is down).
    auth_errors = (400, 401, 429, 503)
    connect_request_ref = _json({"$ref": "#/components/schemas/ConnectRequest"})
    asked = {"connection": connection, "scopes": scopes}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "linking_site agent API",
            "version": "1",
            "description": "Short-lived provider tokens for agents acting for a user. Authenticate with "
            "`Authorization: Bearer <agent key>`; keys are created on /settings/agents/.",
        },
        "servers": [{"url": settings.SITE_URL}],
        "components": {
            "securitySchemes": {"agentKey": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": _ERROR, "ConnectRequest": connect_request},
        },
        "security": [{"agentKey": []}],
        "paths": {
            "/api/v1/token": {
                "post": {
                    "summary": "Get a fresh provider access token for the key's user",
                    "operationId": "getToken",
                    # The RFC 8693 form carries the key as subject_token instead of the header.
                    "security": [{"agentKey": []}, {}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["connection"],
                                    "properties": {
                                        **asked,
                                        "account": {
                                            "type": "integer",
                                            "minimum": 1,
                                            "description": "Identity id, to pick one of several "
                                            "accounts of the provider.",
                                        },
                                        "min_ttl": _MIN_TTL,
                                    },
                                }
                            },
                            "application/x-www-form-urlencoded": {
                                "schema": {
                                    "type": "object",
                                    "description": "RFC 8693 token exchange; the agent key is the subject_token "
                                    "(or the Bearer header). Answers follow RFC 8693; errors RFC 6749 ("
                                    + ", ".join(f"`{code}`" for code in _RFC_CODES)
                                    + "), with the site's own code in `linking_site_error`.",
                                    "required": ["grant_type", "connection"],
                                    "properties": {
                                        "grant_type": {
                                            "type": "string",
                                            "enum": [TOKEN_EXCHANGE],
                                        },
                                        "subject_token": {"type": "string"},
                                        "subject_token_type": {"type": "string"},
                                        "requested_token_type": {"type": "string"},
                                        "connection": connection,
                                        "login_hint": {"type": "string", "maxLength": MAX_LOGIN_HINT_LENGTH},
                                        "scope": {
                                            "type": "string",
                                            "description": "Space-separated scope names.",
                                        },
                                        "min_ttl": _MIN_TTL,
                                    },
                                }
                            },
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "The token (JSON form), or the RFC 8693 response (form body). "
                            "`scope` is what the token carries: for a key with a scope limit, a Google token is "
                            "narrowed to the limit (or to the requested scopes). `expires_in` is the token's real "
                            "remaining lifetime; when the provider stated none, it counts down from "
                            "`VAULT_ASSUMED_TOKEN_LIFETIME`, and is null once that has passed with no refresh "
                            "token to renew it.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["access_token", "token_type", "scope"],
                                        "properties": {
                                            "access_token": {"type": "string"},
                                            "token_type": {"type": "string"},
                                            "issued_token_type": {"type": "string"},
                                            "expires_in": {"type": "integer", "nullable": True},
                                            "expires_at": {
                                                "type": "string",
                                                "format": "date-time",
                                                "nullable": True,
                                            },
                                            "scope": {"type": "string"},
                                            "connection": {"type": "string"},
                                            "account": {"type": "integer"},
                                        },
                                    }
                                }
                            },
                        },
                        **_error_responses(*auth_errors, 403, 503),
                    },
                }
            },
            "/api/v1/connections": {
                "get": {
                    "summary": "The user's linked accounts this key may see, with token status (never tokens)",
                    "operationId": "listConnections",
                    "responses": {
                        "200": {
                            "description": "Linked accounts.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["connections"],
                                        "properties": {
                                            "connections": {
                                                "type": "array",
                                                "items": {
                                                    "type": "object",
                                                    "required": ["account", "connection", "status", "scopes"],
                                                    "properties": {
                                                        "account": {"type": "integer"},
                                                        "connection": {"type": "string"},
                                                        "account_name": {"type": "string"},
                                                        "email": {"type": "string"},
                                                        "email_verified": {"type": "boolean"},
                                                        "default": {"type": "boolean"},
                                                        "status": {
                                                            "type": "string",
                                                            "enum": [
                                                                "active",
                                                                "reconnect_required",
                                                                "vault_fault",
                                                                "missing",
                                                                "not_available",
                                                            ],
                                                        },
                                                        "scopes": {
                                                            "type": "array",
                                                            "items": {"type": "string"},
                                                        },
                                                        "expires_at": {
                                                            "type": "string",
                                                            "format": "date-time",
                                                            "nullable": True,
                                                        },
                                                    },
                                                },
                                            }
                                        },
                                    }
                                }
                            },
                        },
                        **_error_responses(*auth_errors),
                    },
                }
            },
            "/api/v1/connect-requests": {
                "post": {
                    "summary": "Ask the user to link a provider (or grant more scopes)",
                    "operationId": "createConnectRequest",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"type": "object", "required": ["connection"], "properties": asked}
                            }
                        },
                    },
                    "responses": {
                        "201": {
                            "description": "Created.",
                            "content": connect_request_ref,
                        },
                        "200": {
                            "description": "An open request for the same key, provider and scopes.",
                            "content": connect_request_ref,
                        },
                        **_error_responses(*auth_errors, 403),
                    },
                }
            },
            "/api/v1/connect-requests/{request_id}": {
                "get": {
                    "summary": "Poll a connect request this key made",
                    "operationId": "getConnectRequest",
                    "parameters": [
                        {
                            "name": "request_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "maxLength": 40},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The request.",
                            "content": connect_request_ref,
                        },
                        **_error_responses(*auth_errors, 404),
                    },
                }
            },
        },
    }
