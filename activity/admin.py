"""Staff view of the activity log: read-only, nothing deleted (it is the audit trail)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from .models import Activity


@admin.register(Activity)
class ActivityAdmin(admin.ModelAdmin):
    list_display = ("created_at", "kind", "user", "actor", "provider", "message", "ip_address")
    list_filter = ("kind", "provider")
    search_fields = ("user__username", "user__email", "message", "uid")
    date_hierarchy = "created_at"
    list_select_related = ("user", "actor")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
