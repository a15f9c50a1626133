"""Turn refused or failed provider round trips into a message on a page, never a traceback."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from social_core.exceptions import SocialAuthBaseException

from activity import recording

from . import flow_state
from .activity_kinds import AccountKind
from .errors import message_for
from .sudo import reauthenticate_url

logger = logging.getLogger(__name__)


class CanonicalHostMiddleware:
    """Send a browser on another allowed host to ``SITE_URL``'s host before any flow starts.

    Every provider round trip comes back to ``SITE_URL`` (the registered redirect_uri), and the
    flow is bound to the session cookie of the host it started on. A person who opens
    ``localhost:8000`` while ``SITE_URL`` says ``127.0.0.1:8000`` (``make run``) is therefore moved
    to ``127.0.0.1:8000`` first (a GET keeps its path and query; a POST, which cannot be replayed
    elsewhere, lands on the sign-in page there). Machine endpoints are left alone: health checks,
    the agent API, discovery documents, static files and the sandbox's provider endpoints.

    Development only (``DEBUG``): in production ``ALLOWED_HOSTS`` names the site's one host, and a
    proxy that rewrites ``Host`` to an internal name would turn this redirect into a loop (the
    benchmark's servers, on their own ports, are such a case).
    """

    EXEMPT_PREFIXES = ("/healthz", "/readyz", "/api/", "/.well-known/", "/static/", "/sandbox/")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        site = urlsplit(str(settings.SITE_URL))
        if (
            settings.DEBUG
            and site.netloc
            and request.get_host() != site.netloc
            and not request.path.startswith(self.EXEMPT_PREFIXES)
        ):
            if request.method in ("GET", "HEAD"):
                target = f"{site.scheme}://{site.netloc}{request.get_full_path()}"
            else:
                target = f"{site.scheme}://{site.netloc}/"
            response = HttpResponseRedirect(target)
            add_never_cache_headers(response)
            return response
        return self.get_response(request)


class AuthFlowErrorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, SocialAuthBaseException):
            return None
        backend = getattr(exception, "backend", None)
        provider = getattr(backend, "name", "") or ""
        logger.info(
            "Refused %s sign-in or link: %s (%s)", provider or "provider", exception.code, exception.stage
        )
        # Close the pending flow only when this request used it up: at begin, or at a callback
        # whose state was the pending one. A callback with any other state (a forged GET to
        # /complete/...) must leave it, so the real callback still completes (issue 20.10).
        consumed = exception.stage == "begin" or bool(
            backend is not None and getattr(backend, "state_consumed", lambda: True)()
        )
        if consumed and provider:
            flow = flow_state.pop_auth_flow(request.session, provider)
        else:
            flow = flow_state.auth_flow(request.session, provider) if provider else None
        purpose = flow.purpose if flow is not None else ""
        user = request.user if request.user.is_authenticated else None
        recording.record(
            kind=AccountKind.LINK_REFUSED,
            user=user,
            request=request,
            provider=provider,
            message=f"Refused: {message_for(exception)}"[:500],
            data={
                "code": exception.code,
                "stage": exception.stage,
                "purpose": purpose,
            },
        )
        messages.error(request, message_for(exception))
        if user is not None:
            target = reverse("accounts:connections")
            if flow is not None and purpose == "reauth":
                target = reauthenticate_url(flow.next or target)
        else:
            target = reverse("accounts:home")
        response = HttpResponseRedirect(target)
        add_never_cache_headers(response)
        return response
