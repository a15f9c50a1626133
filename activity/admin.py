"""Staff view of the activity log: read-only, nothing deleted (it is the audit trail).

The table grows by a row per token handed out, so the list never counts it and never skips rows
with ``OFFSET``: it pages by ``(created_at, id)`` with an "Older" link, at the same cost at any depth.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.module_loading import import_string

from .admin_mixins import ReadOnlyAdminMixin
from .listing import Cursor, older_than
from .models import Activity

#: The query parameter of the list's position (the last row of the page before).
CURSOR_VAR = "before"


def configured_providers() -> list[tuple[str, str]]:
    """``(name, title)`` of the site's providers, from the callable ``ACTIVITY_PROVIDERS`` names
    (this app imports nothing of ours; on this site: ``accounts.providers.configured_providers``)."""
    path = getattr(settings, "ACTIVITY_PROVIDERS", "")
    return [(p.name, p.title) for p in import_string(path)()] if path else []


class ProviderFilter(admin.SimpleListFilter):
    """Providers by their titles, from settings: no scan of the table for its distinct values."""

    title = "provider"
    parameter_name = "provider"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return configured_providers()

    def queryset(self, request: HttpRequest, queryset: QuerySet[Activity]) -> QuerySet[Activity]:
        return queryset.filter(provider=self.value()) if self.value() else queryset


class KeysetChangeList(ChangeList):
    """One page after the cursor, read with ``LIMIT``: no ``COUNT``, no ``OFFSET``."""

    def __init__(self, request: HttpRequest, *args: Any, **kwargs: Any) -> None:
        text = request.GET.get(CURSOR_VAR, "")
        try:
            self.before = Cursor.parse(text) if text else None
        except ValueError as error:
            raise IncorrectLookupParameters(str(error)) from error
        if CURSOR_VAR in request.GET:
            # ChangeList reads every other parameter as a filter: it must not see this one.
            request.GET = request.GET.copy()
            del request.GET[CURSOR_VAR]
        self.older_query = ""
        super().__init__(request, *args, **kwargs)

    def get_results(self, request: HttpRequest) -> None:
        rows = self.queryset.order_by("-created_at", "-id")
        if self.before is not None:
            rows = older_than(rows, self.before)
        read = list(rows[: self.list_per_page + 1])
        self.result_list = read[: self.list_per_page]
        if len(read) > self.list_per_page:
            self.older_query = self.get_query_string({CURSOR_VAR: Cursor.of(self.result_list[-1]).text()})
        self.newest_query = self.get_query_string() if self.before is not None else ""
        self.result_count = len(self.result_list)
        self.full_result_count = None
        self.show_full_result_count = False
        self.show_admin_actions = True
        self.can_show_all = False
        self.multi_page = False
        self.paginator = None


@admin.register(Activity)
class ActivityAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "kind", "user", "actor", "provider_title", "message", "ip_address")
    list_filter = ("kind", ProviderFilter)
    search_fields = ("user__username", "user__email", "message", "uid")
    list_select_related = ("user", "actor")
    ordering = ("-created_at", "-id")
    # Sorting by another column would break the keyset position; the list is newest first only.
    sortable_by = ()
    show_full_result_count = False
    list_per_page = 100

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return KeysetChangeList

    @admin.display(description="provider")
    def provider_title(self, entry: Activity) -> str:
        return dict(configured_providers()).get(entry.provider, entry.provider)
