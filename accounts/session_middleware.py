"""Keep "last seen" on the sessions page fresh without a write per request."""

from __future__ import annotations

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

from . import sessions


class SessionLastSeenMiddleware:
    """At most one UPDATE per session every ``sessions.LAST_SEEN_INTERVAL``.

    The "written lately" mark lives in the cache (``cache.add`` is one cheap call, and a miss only
    costs one more UPDATE), not in the session: changing the session would save it on every touch.
    Sits after ``AuthenticationMiddleware``.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        # The session key first: requests without a session cookie (the agent API) stop here,
        # before the lazy ``request.user`` would be evaluated.
        session_key = request.session.session_key if hasattr(request, "session") else None
        user = getattr(request, "user", None) if session_key else None
        if user is not None and user.is_authenticated:
            interval = int(sessions.LAST_SEEN_INTERVAL.total_seconds())
            if cache.add(f"session-seen:{session_key}", 1, timeout=interval):
                sessions.touch_session(request=request)
        return response
