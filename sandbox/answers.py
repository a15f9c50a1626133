"""What both stand-ins' endpoints share: reading credentials, JSON answers, simulated outages.

Token responses must not be cached (RFC 6749 5.1), so every JSON answer here says ``no-store``.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse

from . import state
from .models import Grant
from .providers import GITHUB, GOOGLE

TITLES = {GOOGLE: "Sandbox Google", GITHUB: "Sandbox GitHub"}


def json_response(data: Any, status: int = 200) -> JsonResponse:
    """A JSON answer that no cache keeps (token responses must not be cached, RFC 6749 5.1)."""
    response = JsonResponse(data, status=status, safe=False)
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response


def basic_auth(request: HttpRequest) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def bearer(request: HttpRequest, schemes: tuple[str, ...]) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() in schemes and value.strip():
        return value.strip()
    return None


def client_credentials_sent(request: HttpRequest, data: Any) -> tuple[str, str]:
    """HTTP basic when sent, else ``client_id``/``client_secret`` in the body (both providers take either)."""
    return basic_auth(request) or (data.get("client_id") or "", data.get("client_secret") or "")


def with_params(url: str, params: dict[str, str | None]) -> str:
    parts = urlsplit(url)
    extra = urlencode([(key, value) for key, value in params.items() if value is not None])
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def avatar_url(request: HttpRequest, grant: Grant) -> str:
    return request.build_absolute_uri(
        reverse("sandbox:avatar", kwargs={"provider": grant.provider, "subject": grant.subject})
    )


def display_name(grant: Grant) -> str:
    return grant.name or grant.email.rpartition("@")[0] or grant.email


def failure_response(provider: str, *, mode: str | None = None) -> HttpResponse | None:
    """The outage the provider is set to simulate at its token endpoint, if any (``mode`` when the
    endpoint has read it already, so a token request reads it once)."""
    mode = state.get_failure_mode(provider) if mode is None else mode
    if mode == "slow":
        time.sleep(float(getattr(settings, "SANDBOX_SLOW_SECONDS", 6)))
    elif mode == "server_error":
        return json_response(
            {
                "error": "server_error",
                "error_description": f"{TITLES[provider]} simulates an outage (failure mode server_error).",
            },
            status=503,
        )
    elif mode == "rate_limited":
        response = json_response(
            {
                "error": "rate_limit_exceeded",
                "error_description": f"{TITLES[provider]} simulates rate limits (failure mode rate_limited).",
            },
            status=429,
        )
        response["Retry-After"] = "30"
        return response
    return None
