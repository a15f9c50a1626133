"""Staff view of the activity log: read-only, nothing deleted (it is the audit trail)."""

from __future__ import annotations

from django.contrib import admin

from .admin_mixins import ReadOnlyAdminMixin
from .models import Activity


@admin.register(Activity)
class ActivityAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "kind", "user", "actor", "provider", "message", "ip_address")
    list_filter = ("kind", "provider")
    search_fields = ("user__username", "user__email", "message", "uid")
    date_hierarchy = "created_at"
    list_select_related = ("user", "actor")
