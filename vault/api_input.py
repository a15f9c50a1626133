"""What the agent API reads from a request: the JSON body, and each field's check, written once for
the JSON endpoints and the RFC 8693 form (``vault.token_exchange``).

Every check raises ``InvalidRequest`` with a sentence naming the field; nothing here touches the
database, so a view can parse first and still answer a bad key before a bad field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest

from accounts.providers import holds_tokens, token_providers
from accounts.scopes import MAX_SCOPES, SCOPE_NAME_RULE, is_scope_token

from . import errors
from . import scopes as scope_rules
from .limits import DEFAULT_MIN_TTL, MAX_LOGIN_HINT_LENGTH, MAX_MIN_TTL

#: A field the caller did not send (``None`` is a value JSON can send).
MISSING: Any = object()


@dataclass(frozen=True)
class TokenRequest:
    """What ``POST /api/v1/token`` asks for, in either form: ``vault.issuing.issue_token``'s input."""

    connection: str
    scopes: list[str]
    min_ttl: int = DEFAULT_MIN_TTL
    account: int | None = None
    login_hint: str = ""

    def as_kwargs(self) -> dict[str, Any]:
        return {
            "connection": self.connection,
            "scopes": self.scopes,
            "min_ttl": self.min_ttl,
            "account": self.account,
            "login_hint": self.login_hint,
        }


def content_type(request: HttpRequest) -> str:
    return request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()


def json_body(request: HttpRequest) -> dict[str, Any]:
    """The body as a JSON object, or ``InvalidRequest`` saying what is wrong with it."""
    if content_type(request) != "application/json":
        raise errors.InvalidRequest("Send a JSON body with Content-Type: application/json.")
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: a small body of thousands of nested lists is still not a JSON object.
        raise errors.InvalidRequest("The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise errors.InvalidRequest("The body must be a JSON object.")
    return body


def connection(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > 64:
        raise errors.InvalidRequest("'connection' must be a provider name such as \"github\".")
    if not holds_tokens(value):
        names = ", ".join(f"{p.name} ({p.title})" for p in token_providers())
        raise errors.InvalidRequest(f"Unknown connection {value[:64]!r}; the connections here are: {names}.")
    return value


def json_sent_as_form(request: HttpRequest) -> bool:
    """A JSON object sent with a form's Content-Type (``curl -d`` sends one): worth its own hint
    rather than the RFC 8693 form's "use grant_type"."""
    return content_type(request) == "application/x-www-form-urlencoded" and request.body.lstrip()[:1] == b"{"


def scopes(value: object) -> list[str]:
    """``scopes``: a list of scope names (``accounts.scopes``, the site's one grammar)."""
    if value is MISSING:
        return []
    if not isinstance(value, list) or not all(is_scope_token(s) for s in value):
        raise errors.InvalidRequest(f"'scopes' must be a list of scope names ({SCOPE_NAME_RULE}).")
    if len(value) > MAX_SCOPES:
        raise errors.InvalidRequest(f"At most {MAX_SCOPES} scopes.")
    return scope_rules.normalise_requested(value)


def account(value: object) -> int | None:
    if value is MISSING:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        raise errors.InvalidRequest("'account' must be an identity id (a positive integer).")
    return value


def min_ttl(value: object) -> int:
    if value is MISSING:
        return DEFAULT_MIN_TTL
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_MIN_TTL:
        raise errors.InvalidRequest(f"'min_ttl' must be a whole number of seconds from 0 to {MAX_MIN_TTL}.")
    return value


def login_hint(value: str | None) -> str:
    if value and len(value) > MAX_LOGIN_HINT_LENGTH:
        raise errors.InvalidRequest(f"'login_hint' must be at most {MAX_LOGIN_HINT_LENGTH} characters.")
    return value or ""


def form_int(value: str | None) -> object:
    """A form field as a whole number when it is one; otherwise as sent (refused by its check)."""
    if value is None or value == "":
        return MISSING
    try:
        return int(value)
    except ValueError:
        return value


def token_request(body: dict[str, Any]) -> TokenRequest:
    """The JSON form of ``POST /api/v1/token``."""
    return TokenRequest(
        connection=connection(body.get("connection")),
        scopes=scopes(body.get("scopes", MISSING)),
        account=account(body.get("account", MISSING)),
        min_ttl=min_ttl(body.get("min_ttl", MISSING)),
    )
