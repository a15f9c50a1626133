"""Pages for people: sign-in, connections, disconnect, re-authentication, activity; health checks.

Thin on purpose: each view parses input and calls one function in ``accounts.linking`` (or
social-auth for the OAuth round trip itself).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.core.paginator import Paginator
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.utils.module_loading import import_string
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from social_django import views as social_views

from activity import recording
from activity.models import Activity

from . import linking, merging, notifications, sudo
from .activity_kinds import AccountKind
from .converters import is_database_id
from .providers import configured_providers, provider_title
from .scopes import clean_scopes
from .suggestions import suggestions_for


def _identity_extras(user) -> dict:
    """Per-identity extras other apps contribute to the connections page (see settings)."""
    extras: dict = {}
    for path in getattr(settings, "ACCOUNTS_CONNECTIONS_EXTRAS", []):
        extras.update(import_string(path)(user))
    return extras


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return HttpResponseRedirect(settings.LOGIN_REDIRECT_URL)
    next_url = linking.safe_next_url(request.GET.get("next"))
    return render(request, "accounts/sign_in.html", {"providers": configured_providers(), "next": next_url})


@never_cache
@require_POST
def begin(request: HttpRequest, backend: str) -> HttpResponse:
    """Start a provider round trip: sign in, link (sudo mode) or re-authenticate."""
    if not linking.provider_is_available(backend):
        raise Http404("No such provider")
    next_url = linking.safe_next_url(request.POST.get("next"))
    try:
        purpose = linking.flow_purpose(request, requested=request.POST.get("purpose"))
    except linking.SudoRequired as error:
        messages.info(request, str(error))
        # Come back to the page the button was on (e.g. a "grant more access" offer).
        return_to = linking.safe_next_url(request.POST.get("return_to"), default=next_url)
        return HttpResponseRedirect(sudo.reauthenticate_url(return_to))
    scopes = clean_scopes(request.POST.getlist("scope"))
    linking.start_flow(
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
    return HttpResponseRedirect("/")


@login_required
@require_GET
def connections(request: HttpRequest) -> HttpResponse:
    identities = linking.identities_for(request.user)
    extras = _identity_extras(request.user)
    rows = [
        {
            "identity": identity,
            "details": getattr(identity, "details", None),
            "title": provider_title(identity.provider),
            "extra": extras.get(identity.pk, {}),
            # A provider removed from the settings: shown "not available", removable (issue 20.1).
            "available": linking.provider_is_available(identity.provider),
        }
        for identity in identities
    ]
    # ``?connect=<provider>&scope=...`` is where a "grant more access" link lands (vault errors).
    wanted = request.GET.get("connect", "")
    connect_offer = None
    if wanted and linking.provider_is_available(wanted):
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
        identity = linking.get_identity(user=request.user, identity_id=identity_id)
    except linking.LinkingError as error:
        messages.error(request, str(error))
        return HttpResponseRedirect("/settings/connections/")
    if request.method == "GET":
        left = linking.sign_in_methods_left(user=request.user, without=identity)
        return render(
            request,
            "accounts/disconnect_confirm.html",
            {
                "identity": identity,
                "details": getattr(identity, "details", None),
                "title": provider_title(identity.provider),
                "is_last": left == 0,
                "available": linking.provider_is_available(identity.provider),
            },
        )
    try:
        result = linking.unlink_identity(user=request.user, identity_id=identity_id, request=request)
    except linking.LinkingError as error:
        messages.error(request, str(error))
    else:
        messages.success(
            request,
            f"Removed your {provider_title(result.provider)} account {result.account_name or result.uid}.",
        )
    return HttpResponseRedirect("/settings/connections/")


@login_required
@require_POST
def make_default(request: HttpRequest, identity_id: int) -> HttpResponse:
    try:
        identity = linking.set_default_identity(user=request.user, identity_id=identity_id)
    except linking.LinkingError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"This {provider_title(identity.provider)} account is now the default.")
    return HttpResponseRedirect("/settings/connections/")


@login_required
@require_GET
def reauthenticate(request: HttpRequest) -> HttpResponse:
    next_url = linking.safe_next_url(request.GET.get("next"))
    providers = linking.sign_in_options_for_profiles([request.user.pk])
    return render(
        request,
        "accounts/reauthenticate.html",
        {
            "providers": providers,
            "next": next_url,
            "has_password": request.user.has_usable_password(),
        },
    )


@login_required
@require_GET
def activity_page(request: HttpRequest) -> HttpResponse:
    page = Paginator(Activity.objects.filter(user=request.user).select_related("actor"), 50).get_page(
        request.GET.get("page")
    )
    return render(request, "accounts/activity.html", {"page": page})


class PasswordSignInView(LoginView):
    """Staff sign-in with a password (users made with createsuperuser)."""

    template_name = "accounts/password_sign_in.html"
    redirect_authenticated_user = True

    def get_success_url(self) -> str:
        return linking.safe_next_url(self.request.POST.get("next") or self.request.GET.get("next"))


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> HttpResponse:
    """Ready when the database answers and every readiness check in settings passes."""
    problems: list[str] = []
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        problems.append("database unreachable")
    for path in getattr(settings, "READINESS_CHECKS", []):
        problem = import_string(path)()
        if problem:
            problems.append(problem)
    status = 503 if problems else 200
    return JsonResponse(
        {"status": "ok" if not problems else "unavailable", "problems": problems}, status=status
    )


# --- Suggested linking at sign-in -----------------------------------------------------------------


@require_GET
def existing_profile(request: HttpRequest) -> HttpResponse:
    """The question asked when a new sign-in's verified email matches an existing profile."""
    pending = linking.pending_link(request.session)
    if pending is None:
        messages.info(request, "There is nothing waiting to be linked. Sign in to continue.")
        return HttpResponseRedirect("/")
    if request.user.is_authenticated:
        return HttpResponseRedirect("/signin/existing-profile/link/")
    providers = linking.sign_in_options_for_profiles(pending["profile_ids"])
    return render(
        request,
        "accounts/existing_profile.html",
        {
            "pending": pending,
            "title": provider_title(pending["provider"]),
            "providers": providers,
        },
    )


@login_required
@require_GET
def link_pending(request: HttpRequest) -> HttpResponse:
    """After signing in to the existing profile: one click links the account that started it."""
    pending = linking.pending_link(request.session)
    if pending is None:
        return HttpResponseRedirect("/settings/connections/")
    return render(
        request,
        "accounts/link_pending.html",
        {
            "pending": pending,
            "title": provider_title(pending["provider"]),
        },
    )


# --- Merge ------------------------------------------------------------------------------------------


@login_required
@require_POST
def merge_start(request: HttpRequest) -> HttpResponse:
    merging.start_merge_flow(request)
    messages.info(request, "To merge, first confirm it's you on this profile, then sign in to the other one.")
    return HttpResponseRedirect(sudo.reauthenticate_url("/settings/merge/prove/"))


@login_required
@require_GET
def merge_prove(request: HttpRequest) -> HttpResponse:
    flow = merging.merge_flow(request)
    if flow is None or not flow.get("into_proved_at"):
        messages.error(request, "Start the merge from the connections page.")
        return HttpResponseRedirect("/settings/connections/")
    suggestions = suggestions_for(request.user)
    hinted = {p for s in suggestions for p in s.providers}
    return render(
        request,
        "accounts/merge_prove.html",
        {
            "providers": configured_providers(),
            "hinted": hinted,
        },
    )


def _merge_expired(request: HttpRequest) -> HttpResponse:
    messages.error(request, "That merge expired. Please start again from the connections page.")
    return HttpResponseRedirect("/settings/connections/")


@login_required
@require_GET
def merge_review(request: HttpRequest) -> HttpResponse:
    ready = merging.ready_merge(request)
    if ready is None:
        return _merge_expired(request)
    flow, source = ready
    try:
        plan = merging.plan_merge(into=request.user, source=source)
    except merging.MergeError:
        messages.error(request, "That profile can no longer be merged.")
        return HttpResponseRedirect("/settings/connections/")
    proven = merging.proven_identity_ids(flow)
    rows = [
        {
            "identity": i,
            "details": getattr(i, "details", None),
            "title": provider_title(i.provider),
            "proven": i.pk in proven,
        }
        for i in plan.move
    ]
    return render(request, "accounts/merge_review.html", {"rows": rows, "plan": plan, "source": source})


@login_required
@require_POST
def merge_confirm(request: HttpRequest) -> HttpResponse:
    ready = merging.ready_merge(request)
    if ready is None:
        return _merge_expired(request)
    flow, source = ready
    values = request.POST.getlist("identity")
    # Checked by format before any query (a NUL or a 30-digit number is a database error).
    identity_ids = [int(v) for v in values if is_database_id(v)]
    if len(identity_ids) != len(values):
        messages.error(request, "The merge form was not valid; nothing was changed.")
        return HttpResponseRedirect("/settings/merge/review/")
    try:
        plan = merging.merge_profiles(
            into=request.user,
            source=source,
            move_identity_ids=identity_ids,
            proven_identity_ids=merging.proven_identity_ids(flow),
            request=request,
        )
    except merging.UnprovenIdentity as error:
        messages.error(request, str(error))
        return HttpResponseRedirect("/settings/merge/review/")
    except merging.MergeError as error:
        merging.finish_merge_flow(request)
        messages.error(request, str(error))
        return HttpResponseRedirect("/settings/connections/")
    merging.finish_merge_flow(request)
    messages.success(
        request,
        f"Merged the other profile into this one: {len(plan.move)} account(s) moved, "
        f"{len(plan.drop)} removed.",
    )
    return HttpResponseRedirect("/settings/connections/")
