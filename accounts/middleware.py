"""Turn refused or failed provider round trips into a message on a page, never a traceback."""

from __future__ import annotations

import logging

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.cache import add_never_cache_headers
from social_core.exceptions import SocialAuthBaseException

from . import activity
from .errors import message_for
from .linking import FLOW_SESSION_PREFIX
from .models import Activity
from .sudo import reauthenticate_url

logger = logging.getLogger(__name__)


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
        flow = request.session.pop(FLOW_SESSION_PREFIX + provider, None) if provider else None
        request.session.pop("auth_flow_fresh", None)
        user = request.user if request.user.is_authenticated else None
        activity.record(
            kind=Activity.Kind.LINK_REFUSED,
            user=user,
            request=request,
            provider=provider,
            message=f"Refused: {exception.code}",
            data={
                "code": exception.code,
                "stage": exception.stage,
                "purpose": (flow or {}).get("purpose", ""),
            },
        )
        messages.error(request, message_for(exception))
        if user is not None:
            target = "/settings/connections/"
            if (flow or {}).get("purpose") == "reauth":
                target = reauthenticate_url((flow or {}).get("next") or target)
        else:
            target = "/"
        response = HttpResponseRedirect(target)
        add_never_cache_headers(response)
        return response
