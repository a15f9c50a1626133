"""Pages for people: agent keys (/settings/agents/) and agents' connect requests (/connect/<id>/)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import sudo
from accounts.providers import provider_title

from . import agents, connect, page_state
from .forms import AgentKeyForm, initial_from_draft


def _agents_page(request: HttpRequest, form: AgentKeyForm, status: int = 200) -> HttpResponse:
    shown = page_state.pop_new_key(request.session, user_id=request.user.pk)
    keys = agents.keys_with_recent_grants(request.user)
    response = render(
        request,
        "vault/agents.html",
        {
            "form": form,
            "keys": [(key, grants) for key, grants in keys if key.state == "active"],
            "past_keys": [(key, grants) for key, grants in keys if key.state != "active"],
            "new_key": shown[1] if shown else "",
            "new_row": shown[0] if shown else None,
            "sudo_active": sudo.is_recent(request),
        },
        status=status,
    )
    add_never_cache_headers(response)  # a new key is on this page once; no cache may keep it
    return response


@login_required
@require_http_methods(["GET", "POST"])
def agents_page(request: HttpRequest) -> HttpResponse:
    """Create a key (POST, then a redirect: a reload or "back" never creates a second one)."""
    if request.method == "GET":
        draft = page_state.pop_form_draft(request.session)
        return _agents_page(request, AgentKeyForm(initial=initial_from_draft(draft) if draft else None))
    if not sudo.is_recent(request):
        # The filled-in form comes back after the detour (as a draft; nothing is created).
        page_state.hold_form_draft(request.session, data=request.POST, fields=list(AgentKeyForm().fields))
        messages.info(request, "Please confirm it's you before creating an agent key.")
        return HttpResponseRedirect(sudo.reauthenticate_url(reverse("vault:agents")))
    form = AgentKeyForm(request.POST)
    if not form.is_valid():
        return _agents_page(request, form, status=400)
    try:
        row, key = agents.create_agent_key(
            user=request.user,
            name=form.cleaned_data["name"],
            providers=form.cleaned_data["providers"],
            scopes=form.scope_limits(),
            expires_in_days=form.cleaned_data["expires_in_days"],
            whole_grant=form.cleaned_data["whole_grant"],
            request=request,
        )
    except agents.AgentKeyError as error:
        form.add_error(None, str(error))
        return _agents_page(request, form, status=400)
    page_state.hold_new_key(request.session, row=row, plaintext=key)
    return HttpResponseRedirect(reverse("vault:agents"), status=303)


@login_required
@require_http_methods(["GET", "POST"])
def revoke_key(request: HttpRequest, key_id: int) -> HttpResponse:
    """Revoking asks first: the GET is a page that says what stops working, the POST revokes."""
    if request.method == "GET":
        row = agents.own_key(user=request.user, key_id=key_id)
        if row is None or row.state != "active":
            messages.error(request, "That agent key was not found or is no longer active.")
            return HttpResponseRedirect(reverse("vault:agents"))
        response = render(request, "vault/agent_revoke.html", {"key": row})
        add_never_cache_headers(response)
        return response
    try:
        row = agents.revoke_agent_key(user=request.user, key_id=key_id, request=request)
    except agents.AgentKeyError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Revoked agent key {row.name} ({row.hint}). It stops working at once.")
    return HttpResponseRedirect(reverse("vault:agents"))


def _closed_page(request: HttpRequest, status: str) -> HttpResponse:
    return render(request, "vault/connect_closed.html", {"status": status}, status=410)


def _refusal(request: HttpRequest, error: Exception) -> HttpResponse:
    """The page for a connect request that cannot be acted on by this person now."""
    if isinstance(error, connect.NotYourRequest):
        return render(request, "vault/connect_not_yours.html", status=403)
    if isinstance(error, connect.RequestClosed):
        if error.status == "completed":
            return render(request, "vault/connect_done.html", {"title": ""})
        return _closed_page(request, error.status)
    return render(request, "vault/connect_closed.html", {"status": "unknown"}, status=404)


_REFUSALS = (connect.ConnectRequestNotFound, connect.NotYourRequest, connect.RequestClosed)


@require_GET
def connect_page(request: HttpRequest, request_id: str) -> HttpResponse:
    """Where a user approves or declines an agent's request."""
    if not request.user.is_authenticated:
        here = reverse("vault:connect_request", kwargs={"request_id": request_id})
        return HttpResponseRedirect(f"{reverse('accounts:home')}?{urlencode({'next': here})}")
    try:
        found = connect.open_for_user(request_id=request_id, user=request.user)
    except connect.RequestClosed as closed:
        return _closed_page(request, closed.status)  # even a completed one: this page is the start
    except _REFUSALS as error:
        return _refusal(request, error)
    return render(
        request,
        "vault/connect.html",
        {
            "cr": found,
            "asker": connect.asker_title(found),
            "title": provider_title(found.provider),
            "sudo_active": sudo.is_recent(request),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def connect_done(request: HttpRequest, request_id: str) -> HttpResponse:
    """Back from the provider: a page asking to let the agent continue (GET), and that answer (POST).

    A GET never completes anything: a link to this page, followed from anywhere, must not approve
    an agent's request or record that the person did.
    """
    if request.method == "GET":
        return _confirm_done_page(request, request_id)
    try:
        found = connect.complete(request_id=request_id, user=request.user)
    except _REFUSALS as error:
        return _refusal(request, error)
    if found.status != "completed":
        messages.error(
            request,
            f"{provider_title(found.provider)} did not grant everything the agent asked "
            "for. You can try again or decline.",
        )
        return HttpResponseRedirect(reverse("vault:connect_request", kwargs={"request_id": found.id}))
    return render(
        request,
        "vault/connect_done.html",
        {"cr": found, "title": provider_title(found.provider), "asker": connect.asker_title(found)},
    )


def _confirm_done_page(request: HttpRequest, request_id: str) -> HttpResponse:
    try:
        found = connect.open_for_user(request_id=request_id, user=request.user)
    except _REFUSALS as error:
        return _refusal(request, error)
    return render(
        request,
        "vault/connect_confirm.html",
        {
            "cr": found,
            "asker": connect.asker_title(found),
            "title": provider_title(found.provider),
            "covered": connect.is_covered(found),
        },
    )


@login_required
@require_POST
def connect_decline(request: HttpRequest, request_id: str) -> HttpResponse:
    try:
        connect.decline(request_id=request_id, user=request.user)
    except connect.RequestClosed as closed:
        return _closed_page(request, closed.status)
    except _REFUSALS as error:
        return _refusal(request, error)
    messages.info(request, "You declined the agent's request. Nothing was linked.")
    return HttpResponseRedirect(reverse("vault:agents"))
