"""Pages for one agent key: its full token history (paginated) and renaming it."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET, require_http_methods

from . import agents
from .models import AgentKey

HISTORY_PAGE_SIZE = 50


class RenameForm(forms.Form):
    name = forms.CharField(label="New name", max_length=100)


def _own_key_or_404(request: HttpRequest, key_id: int) -> AgentKey:
    row = agents.own_key(user=request.user, key_id=key_id)
    if row is None:
        raise Http404("That agent key was not found.")  # someone else's looks like an unknown one
    return row


@login_required
@require_GET
def key_history(request: HttpRequest, key_id: int) -> HttpResponse:
    key = _own_key_or_404(request, key_id)
    page = Paginator(agents.grants_of(user=request.user, key=key), HISTORY_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    response = render(request, "vault/agent_history.html", {"key": key, "page": page})
    add_never_cache_headers(response)
    return response


@login_required
@require_http_methods(["GET", "POST"])
def rename_key(request: HttpRequest, key_id: int) -> HttpResponse:
    key = _own_key_or_404(request, key_id)
    if request.method == "GET":
        return render(
            request, "vault/agent_rename.html", {"key": key, "form": RenameForm(initial={"name": key.name})}
        )
    form = RenameForm(request.POST)
    if form.is_valid():
        try:
            row = agents.rename_agent_key(user=request.user, key_id=key.pk, name=form.cleaned_data["name"])
        except agents.AgentKeyError as error:
            form.add_error("name", str(error))
        else:
            messages.success(request, f"Renamed the agent key to {row.name}.")
            return HttpResponseRedirect(reverse("vault:agents"))
    return render(request, "vault/agent_rename.html", {"key": key, "form": form}, status=400)
