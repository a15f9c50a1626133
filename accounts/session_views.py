"""The sessions page (/settings/sessions/): the person's signed-in browsers, signed out from here.

Thin over ``accounts.sessions``. Signing a browser out is a sensitive change (sudo mode); the
detour to confirm who you are comes back to this page, where the person presses the button again.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from . import sessions, sudo


@login_required
@require_GET
def sessions_page(request: HttpRequest) -> HttpResponse:
    rows = sessions.sessions_for(user=request.user, current_key=request.session.session_key)
    return render(
        request,
        "accounts/sessions.html",
        {
            "rows": rows,
            "others": sum(1 for row in rows if not row.is_current),
            "sudo_active": sudo.is_recent(request),
        },
    )


@login_required
@require_POST
def end_session(request: HttpRequest, session_id: int) -> HttpResponse:
    if not sudo.is_recent(request):
        return _sudo_detour(request)
    try:
        row = sessions.end_session(
            user=request.user,
            session_id=session_id,
            current_key=request.session.session_key,
            request=request,
        )
    except sessions.SessionNotFound as error:
        raise Http404(str(error)) from error
    except sessions.SessionError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Signed out {row.device}.")
    return HttpResponseRedirect(reverse("accounts:sessions"))


@login_required
@require_POST
def end_other_sessions(request: HttpRequest) -> HttpResponse:
    if not sudo.is_recent(request):
        return _sudo_detour(request)
    count = sessions.end_other_sessions(
        user=request.user, current_key=request.session.session_key, request=request
    )
    if count:
        messages.success(request, f"Signed out {count} other browser{'s' if count != 1 else ''}.")
    else:
        messages.info(request, "No other browser was signed in.")
    return HttpResponseRedirect(reverse("accounts:sessions"))


def _sudo_detour(request: HttpRequest) -> HttpResponse:
    messages.info(request, "Please confirm it's you before signing browsers out.")
    return HttpResponseRedirect(sudo.reauthenticate_url(reverse("accounts:sessions")))
