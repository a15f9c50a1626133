"""The merge pages: start, prove the other profile, review the plan, confirm.

Each parses input and calls ``accounts.merge_flow`` (the steps, kept in the session) or
``accounts.merging`` (the merge itself).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from . import merge_flow, merging, sudo
from .converters import is_database_id
from .providers import configured_providers, provider_title
from .suggestions import suggestions_for


@login_required
@require_POST
def merge_start(request: HttpRequest) -> HttpResponse:
    merge_flow.start_merge_flow(request)
    messages.info(request, "To merge, first confirm it's you on this profile, then sign in to the other one.")
    return HttpResponseRedirect(sudo.reauthenticate_url(reverse("accounts:merge_prove")))


@login_required
@require_GET
def merge_prove(request: HttpRequest) -> HttpResponse:
    flow = merge_flow.current_merge_flow(request)
    if flow is None or not flow.into_proved_at:
        messages.error(request, "Start the merge from the connections page.")
        return HttpResponseRedirect(reverse("accounts:connections"))
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
    return HttpResponseRedirect(reverse("accounts:connections"))


@login_required
@require_GET
def merge_review(request: HttpRequest) -> HttpResponse:
    ready = merge_flow.ready_merge(request)
    if ready is None:
        return _merge_expired(request)
    flow, source = ready
    try:
        plan = merging.plan_merge(into=request.user, source=source)
    except merging.MergeError:
        messages.error(request, "That profile can no longer be merged.")
        return HttpResponseRedirect(reverse("accounts:connections"))
    proven = merge_flow.proven_identity_ids(flow)
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
    ready = merge_flow.ready_merge(request)
    if ready is None:
        return _merge_expired(request)
    flow, source = ready
    values = request.POST.getlist("identity")
    # Checked by format before any query (a NUL or a 30-digit number is a database error).
    identity_ids = [int(v) for v in values if is_database_id(v)]
    if len(identity_ids) != len(values):
        messages.error(request, "The merge form was not valid; nothing was changed.")
        return HttpResponseRedirect(reverse("accounts:merge_review"))
    try:
        plan = merging.merge_profiles(
            into=request.user,
            source=source,
            move_identity_ids=identity_ids,
            proven_identity_ids=merge_flow.proven_identity_ids(flow),
            request=request,
        )
    except merging.UnprovenIdentity as error:
        messages.error(request, str(error))
        return HttpResponseRedirect(reverse("accounts:merge_review"))
    except merging.MergeError as error:
        merge_flow.finish_merge_flow(request)
        messages.error(request, str(error))
        return HttpResponseRedirect(reverse("accounts:connections"))
    merge_flow.finish_merge_flow(request)
    messages.success(
        request,
        f"Merged the other profile into this one: {len(plan.move)} account(s) moved, "
        f"{len(plan.drop)} removed.",
    )
    return HttpResponseRedirect(reverse("accounts:connections"))
