"""The applications page (/settings/apps/): what each application may get, and "Remove access"."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from . import clients, consent
from .access import apps_of


@login_required
@require_GET
def apps_page(request: HttpRequest) -> HttpResponse:
    return render(request, "authserver/apps.html", {"apps": apps_of(request.user)})


@login_required
@require_POST
def remove_access(request: HttpRequest, application_id: int) -> HttpResponse:
    try:
        application = consent.remove_access(user=request.user, application_id=application_id, request=request)
    except consent.NoSuchAccess:
        messages.error(request, "That application has no access to remove.")
    else:
        messages.success(request, f"Removed {clients.title(application)}'s access. It stops working at once.")
    return HttpResponseRedirect(reverse("authserver:apps"))
