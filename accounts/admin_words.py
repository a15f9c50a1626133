"""The admin in the words of the site's pages: providers by title, times in the one format.

Staff read the same names people do ("Google", "6 Dec 2026, 21:40 UTC"); the machine names stay in
URLs (a filter's query string is still ``?provider=google-oauth2``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html_join

from .providers import provider_title
from .scope_words import short_name
from .templatetags.plain_words import when_text


class ProviderFilter(admin.SimpleListFilter):
    """Filter by provider, each listed by its title (only the providers the rows have)."""

    title = "provider"
    parameter_name = "provider"
    #: The model field holding the backend name.
    field = "provider"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        names = model_admin.get_queryset(request).order_by().values_list(self.field, flat=True).distinct()
        return sorted(((name, provider_title(name)) for name in names if name), key=lambda item: item[1])

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        return queryset.filter(**{self.field: value}) if value else queryset


def when_display(field: str, description: str) -> Callable[[Any, Any], str]:
    """A list column or read-only field showing ``field`` in the one time format, sortable by it."""

    @admin.display(description=description, ordering=field)
    def show(model_admin: Any, obj: Any) -> str:
        return when_text(getattr(obj, field)) or "-"

    show.__name__ = f"{field}_when"
    return show


def short_names(scopes: list[str]) -> str:
    """``drive.readonly openid``, each with its full name in a ``title``."""
    return format_html_join(" ", '<span title="{}">{}</span>', ((s, short_name(s)) for s in scopes))


def scopes_display(field: str, description: str) -> Callable[[Any, Any], str]:
    """Scopes by their short names (``drive.readonly``), the full name on hover: staff compare the
    exact names, and a column of Google URLs is unreadable."""

    @admin.display(description=description)
    def show(model_admin: Any, obj: Any) -> str:
        return short_names(getattr(obj, field) or []) or "-"

    show.__name__ = f"{field}_short"
    return show


def provider_display(field: str = "provider") -> Callable[[Any, Any], str]:
    """A list column or read-only field showing the provider's title, sortable by its name."""

    @admin.display(description="provider", ordering=field)
    def show(model_admin: Any, obj: Any) -> str:
        return provider_title(getattr(obj, field))

    show.__name__ = f"{field}_title"
    return show
