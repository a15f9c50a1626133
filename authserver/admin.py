"""Staff views of applications (with their policy, and whether they registered themselves) and consents."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db import models
from oauth2_provider.admin import ApplicationAdmin
from oauth2_provider.models import Application

from activity.admin_mixins import ReadOnlyAdminMixin

from . import clients
from .endpoints import is_acceptable_redirect
from .models import ApplicationPolicy, Consent


class PolicyInline(admin.StackedInline):
    model = ApplicationPolicy
    can_delete = False
    fields = ("resource", "connections", "provider_scopes", "logo_url")
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}


class ApplicationForm(forms.ModelForm):
    """The toolkit's form, with the site's one redirect rule (as registration and the command)."""

    class Meta:
        model = Application
        # The admin's fieldsets choose the fields shown; this names the one the form checks.
        fields = ("redirect_uris",)

    def clean_redirect_uris(self) -> str:
        value = self.cleaned_data.get("redirect_uris", "")
        refused = [uri for uri in value.split() if not is_acceptable_redirect(uri)]
        if refused:
            raise forms.ValidationError(
                f"Each redirect URI must be https, or http on a loopback address: {refused[0][:80]!r}."
            )
        return value


class SiteApplicationAdmin(ApplicationAdmin):
    form = ApplicationForm
    inlines = [PolicyInline]
    # Nothing is granted without the person's click: the toolkit's "skip authorization" stays off.
    readonly_fields = (*ApplicationAdmin.readonly_fields, "skip_authorization")
    list_display = ("pk", "shown_name", "user", "client_type", "registered_by", "created")

    @admin.display(description="name")
    def shown_name(self, obj: Application) -> str:
        return clients.title(obj)

    @admin.display(description="registered by")
    def registered_by(self, obj: Application) -> str:
        return "itself (not checked by staff)" if clients.is_self_registered(obj) else "staff"


admin.site.unregister(Application)
admin.site.register(Application, SiteApplicationAdmin)


@admin.register(Consent)
class ConsentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("application", "user", "scopes", "created_at", "last_exchange_at")
    list_select_related = ("application", "user")
    search_fields = ("application__name", "application__client_id", "user__username", "user__email")
