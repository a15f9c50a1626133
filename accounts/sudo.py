"""Sudo mode: sensitive changes need a sign-in within the last SUDO_MODE_SECONDS.

The time of the last interactive sign-in (provider round trip or password) is kept in the session
(``accounts.flow_state``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from . import flow_state


def mark_authenticated(request: HttpRequest) -> None:
    flow_state.mark_signed_in(request.session)


def is_recent(request: HttpRequest) -> bool:
    signed_in_at = flow_state.signed_in_at(request.session)
    if signed_in_at is None:
        return False
    return time.time() - signed_in_at <= settings.SUDO_MODE_SECONDS


def reauthenticate_url(next_url: str) -> str:
    return f"{reverse('accounts:reauthenticate')}?{urlencode({'next': next_url})}"


def sudo_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Send the user to confirm who they are, then back to this page (as a GET)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not is_recent(request):
            return HttpResponseRedirect(reauthenticate_url(request.path))
        return view(request, *args, **kwargs)

    return wrapper
