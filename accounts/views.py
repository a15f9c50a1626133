"""Pages for people: sign-in, connections, disconnect, re-authentication; health checks.

Thin on purpose: each view parses input and calls one service function (``accounts.flows``,
``accounts.identities``, ``accounts.unlinking``) or social-auth for the OAuth round trip itself.
The merge pages are ``accounts.merge_views``.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.db import connection
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponsePermanentRedirect,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from social_django import views as social_views

from activity import recording

from . import flow_state, flows, identities, notifications, sudo, unlinking
from .activity_kinds import AccountKind
from .adapter import get_adapter
from .exceptions import LinkingError, SudoRequired
from .providers import configured_providers, is_configured, provider_title
from .redirects import safe_next_url
from .scopes import clean_scopes
from .staff_sign_in import StaffAuthenticationForm
from .suggestions import suggestions_for


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return HttpResponseRedirect(settings.LOGIN_REDIRECT_URL)
    next_url = safe_next_url(request.GET.get("next"))
    return render(request, "accounts/sign_in.html", {"providers": configured_providers(), "next": next_url})


@never_cache
@require_POST
def begin(request: HttpRequest, backend: str) -> HttpResponse:
    """Start a provider round trip: sign in, link (sudo mode) or re-authenticate."""
    if not is_configured(backend):
        raise Http404("No such provider")
    next_url = safe_next_url(request.POST.get("next"))
    try:
        purpose = flows.flow_purpose(request, requested=request.POST.get("purpose"))
    except SudoRequired as error:
        messages.info(request, str(error))
        # Come back to the page the button was on (e.g. a "grant more access" offer).
        return_to = safe_next_url(request.POST.get("return_to"), default=next_url)
        return HttpResponseRedirect(sudo.reauthenticate_url(return_to))
    scopes = clean_scopes(request.POST.getlist("scope"))
    flows.start_flow(
        request,
        backend_name=backend,
        purpose=purpose,
        next_url=next_url,
        scopes=scopes,
        fresh=request.POST.get("fresh") == "1",
        separate_profile=request.POST.get("separate") == "1",
    )
    # social-auth reads and re-sanitises ``next`` itself; give it only the checked value.
    request.POST = request.POST.copy()
    request.POST["next"] = next_url
    return social_views.auth(request, backend)


@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        recording.record(
            kind=AccountKind.SIGNED_OUT, user=request.user, request=request, message="Signed out"
        )
    logout(request)
    messages.info(request, "You are signed out.")
    return HttpResponseRedirect(reverse("accounts:home"))


@login_required
@require_GET
def connections(request: HttpRequest) -> HttpResponse:
    linked = identities.identities_for(request.user)
    # What other apps show per identity (the vault: token status), from the adapter.
    statuses = get_adapter(request).identity_statuses(request.user)
    rows = [
        {
            "identity": identity,
            "details": getattr(identity, "details", None),
            "title": provider_title(identity.provider),
            "extra": statuses.get(identity.pk),
            # A provider removed from the settings: shown "not available", removable (issue 20.1).
            "available": is_configured(identity.provider),
        }
        for identity in linked
    ]
    # ``?connect=<provider>&scope=...`` is where a "grant more access" link lands (vault errors).
    wanted = request.GET.get("connect", "")
    connect_offer = None
    if wanted and is_configured(wanted):
        connect_offer = {
            "provider": wanted,
            "title": provider_title(wanted),
            "scopes": clean_scopes(request.GET.getlist("scope")),
        }
    return render(
        request,
        "accounts/connections.html",
        {
            "rows": rows,
            "providers": configured_providers(),
            "sudo_active": sudo.is_recent(request),
            "connect_offer": connect_offer,
            "notice_address": notifications.notice_address(request.user),
            "suggestions": [
                {"providers": [provider_title(p) for p in suggestion.providers]}
                for suggestion in suggestions_for(request.user)
            ],
        },
    )


@login_required
@sudo.sudo_required
@require_http_methods(["GET", "POST"])
def disconnect(request: HttpRequest, identity_id: int) -> HttpResponse:
    try:
        identity = identities.get_identity(user=request.user, identity_id=identity_id)
    except LinkingError as error:
        messages.error(request, str(error))
        return HttpResponseRedirect(reverse("accounts:connections"))
    if request.method == "GET":
        left = unlinking.sign_in_methods_left(user=request.user, without=identity)
        return render(
            request,
            "accounts/disconnect_confirm.html",
            {
                "identity": identity,
                "details": getattr(identity, "details", None),
                "title": provider_title(identity.provider),
                "is_last": left == 0,
                "available": is_configured(identity.provider),
            },
        )
    try:
        result = unlinking.unlink_identity(user=request.user, identity_id=identity_id, request=request)
    except LinkingError as error:
        messages.error(request, str(error))
    else:
        messages.success(
            request,
            f"Removed your {provider_title(result.provider)} account {result.account_name or result.uid}.",
        )
    return HttpResponseRedirect(reverse("accounts:connections"))


@login_required
@require_POST
def make_default(request: HttpRequest, identity_id: int) -> HttpResponse:
    try:
        identity = identities.set_default_identity(user=request.user, identity_id=identity_id)
    except LinkingError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"This {provider_title(identity.provider)} account is now the default.")
    return HttpResponseRedirect(reverse("accounts:connections"))


@login_required
@require_GET
def reauthenticate(request: HttpRequest) -> HttpResponse:
    next_url = safe_next_url(request.GET.get("next"))
    providers = identities.sign_in_options_for_profiles([request.user.pk])
    return render(
        request,
        "accounts/reauthenticate.html",
        {
            "providers": providers,
            "next": next_url,
            "has_password": request.user.has_usable_password(),
        },
    )


class PasswordSignInView(LoginView):
    """Staff sign-in with a password (users made with createsuperuser)."""

    template_name = "accounts/password_sign_in.html"
    authentication_form = StaffAuthenticationForm  # throttled per address
    redirect_authenticated_user = True

    def get_success_url(self) -> str:
        return safe_next_url(self.request.POST.get("next") or self.request.GET.get("next"))


@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico on pages that name no icon (the admin, the sandbox): send them
    to the site's one icon (by its versioned name in production) instead of a logged 404."""
    return HttpResponsePermanentRedirect(static("favicon.svg"))


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> HttpResponse:
    """Ready when the database answers and the adapter reports no problem (the vault's keys)."""
    problems: list[str] = []
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        problems.append("database unreachable")
    problems += get_adapter(request).readiness_problems()
    status = 503 if problems else 200
    return JsonResponse(
        {"status": "ok" if not problems else "unavailable", "problems": problems}, status=status
    )


@require_GET
def existing_profile(request: HttpRequest) -> HttpResponse:
    """The question asked when a new sign-in's verified email matches an existing profile."""
    pending = flow_state.pending_link(request.session)
    if pending is None:
        messages.info(request, "There is nothing waiting to be linked. Sign in to continue.")
        return HttpResponseRedirect(reverse("accounts:home"))
    if request.user.is_authenticated:
        return HttpResponseRedirect(reverse("accounts:link_pending"))
    providers = identities.sign_in_options_for_profiles(pending.profile_ids)
    return render(
        request,
        "accounts/existing_profile.html",
        {
            "pending": pending,
            "title": provider_title(pending.provider),
            "providers": providers,
        },
    )


@login_required
@require_GET
def link_pending(request: HttpRequest) -> HttpResponse:
    """After signing in to the existing profile: one click links the account that started it."""
    pending = flow_state.pending_link(request.session)
    if pending is None:
        return HttpResponseRedirect(reverse("accounts:connections"))
    return render(
        request,
        "accounts/link_pending.html",
        {
            "pending": pending,
            "title": provider_title(pending.provider),
        },
    )
