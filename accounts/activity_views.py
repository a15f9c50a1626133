"""The person's activity page and its CSV and JSON export: thin views over ``activity.listing``."""

from __future__ import annotations

from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from activity import kinds, listing

from .activity_export import export_lines
from .adapter import get_adapter
from .providers import configured_providers


class ActivityFilterForm(forms.Form):
    """The list's filters, read from the query string: only values the page offered are accepted."""

    kind = forms.ChoiceField(label="What", required=False)
    provider = forms.ChoiceField(label="Provider", required=False)
    agent = forms.TypedChoiceField(label="Agent", required=False, coerce=int, empty_value=None)

    def __init__(self, data: object, *, agent_names: dict[int, str]) -> None:
        super().__init__(data)
        self.fields["kind"].choices = [("", "Everything"), *sorted(kinds.choices(), key=lambda c: c[1])]
        self.fields["provider"].choices = [("", "All providers")] + [
            (p.name, p.title) for p in configured_providers()
        ]
        agents = sorted(((str(pk), name) for pk, name in agent_names.items()), key=lambda c: c[1].lower())
        self.fields["agent"].choices = [("", "All agents and people"), *agents]

    def filters(self) -> listing.Filters:
        if not self.is_valid():
            return listing.Filters()
        data = self.cleaned_data
        return listing.Filters(kind=data["kind"], provider=data["provider"], agent_key_id=data["agent"])

    def problem(self) -> str:
        """One line naming the filters that were ignored, for the person."""
        names = [self.fields[name].label for name in self.errors]
        return f"That filter is not one this page offers ({', '.join(names)}); showing everything."


def _cursor(request: HttpRequest, name: str) -> listing.Cursor | None:
    text = request.GET.get(name)
    return listing.Cursor.parse(text) if text else None


@login_required
@require_GET
def activity_page(request: HttpRequest) -> HttpResponse:
    agent_names = get_adapter(request).agent_key_names(request.user)
    form = ActivityFilterForm(request.GET, agent_names=agent_names)
    filters = form.filters()
    if request.GET and not form.is_valid():
        messages.error(request, form.problem())
    grouped = request.GET.get("flat") != "1"
    try:
        before, after = _cursor(request, "before"), _cursor(request, "after")
    except ValueError:
        messages.error(request, "That page link is not valid any more; here is your latest activity.")
        before = after = None
    page = listing.page_of(
        user_id=request.user.pk,
        filters=filters,
        agent_names=agent_names,
        before=before,
        after=None if before else after,
        grouped=grouped,
    )
    keep = {**filters.query(), **({} if grouped else {"flat": "1"})}
    return render(
        request,
        "accounts/activity.html",
        {
            "form": form,
            "page": page,
            "grouped": grouped,
            "filters": filters,
            "export_query": urlencode(filters.query()),
            "older_query": page.older and urlencode({**keep, "before": page.older.text()}),
            "newer_query": page.newer and urlencode({**keep, "after": page.newer.text()}),
        },
    )


@login_required
@require_GET
def activity_export(request: HttpRequest, fmt: str) -> HttpResponse:
    """The person's own activity (as filtered on the page), streamed: any length, little memory."""
    agent_names = get_adapter(request).agent_key_names(request.user)
    form = ActivityFilterForm(request.GET, agent_names=agent_names)
    if request.GET and not form.is_valid():
        return HttpResponse(form.problem().replace("showing everything", "nothing exported"), status=400)
    content_type = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"
    response = StreamingHttpResponse(
        export_lines(user_id=request.user.pk, filters=form.filters(), fmt=fmt, agent_names=agent_names),
        content_type=content_type,
    )
    response["Content-Disposition"] = f'attachment; filename="activity.{fmt}"'
    response["Cache-Control"] = "private, no-store"
    return response
