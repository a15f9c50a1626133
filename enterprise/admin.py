"""Staff view of enterprise connections: the same fields as the command, metadata checked on save."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from .connections import (
    ConnectionInputError,
    MetadataSource,
    apply_metadata,
    read_metadata,
    refresh_connection,
)
from .metadata import MetadataError
from .models import EnterpriseConnection


class ConnectionForm(forms.ModelForm):
    metadata_url = forms.URLField(
        required=False,
        max_length=500,
        assume_scheme="https",
        help_text="https URL of the IdP's metadata; fetched when it changes, re-read by a refresh.",
    )

    class Meta:
        model = EnterpriseConnection
        fields = [
            "slug",
            "name",
            "enabled",
            "metadata_url",
            "metadata_xml",
            "email_domains",
            "trust_email",
            "allow_idp_initiated",
            "attr_subject",
            "attr_email",
            "attr_name",
        ]

    def clean(self) -> dict:
        data = super().clean()
        url = data.get("metadata_url") or ""
        xml = data.get("metadata_xml") or ""
        url_changed = "metadata_url" in self.changed_data and url
        if not url and not xml.strip():
            raise forms.ValidationError("Paste the IdP's metadata or give its https URL.")
        try:
            # A new URL is fetched (and wins over what was pasted); otherwise the XML is read.
            self.metadata = read_metadata(
                MetadataSource(url=url) if url_changed or not xml.strip() else MetadataSource(xml=xml)
            )
        except MetadataError as error:
            raise forms.ValidationError(str(error)) from None
        return data


@admin.register(EnterpriseConnection)
class EnterpriseConnectionAdmin(admin.ModelAdmin):
    form = ConnectionForm
    list_display = ("name", "slug", "enabled", "trust_email", "email_domains", "metadata_refreshed_at")
    list_filter = ("enabled", "trust_email")
    search_fields = ("name", "slug", "email_domains", "entity_id")
    readonly_fields = ("entity_id", "sso_url", "signing_certificate_count", "metadata_refreshed_at")
    actions = ("refresh_metadata", "disable")

    @admin.display(description="signing certificates")
    def signing_certificate_count(self, obj: EnterpriseConnection) -> int:
        return len(obj.signing_certificates or [])

    def save_model(
        self, request: HttpRequest, obj: EnterpriseConnection, form: ConnectionForm, change: bool
    ) -> None:
        xml, parsed = form.metadata
        apply_metadata(obj, xml, parsed)
        super().save_model(request, obj, form, change)

    @admin.action(description="Re-read metadata from its URL")
    def refresh_metadata(self, request: HttpRequest, queryset: QuerySet) -> None:
        for connection in queryset:
            try:
                refresh_connection(slug=connection.slug)
            except ConnectionInputError as error:
                self.message_user(request, f"{connection.slug}: {error}", messages.ERROR)
            else:
                self.message_user(request, f"{connection.slug}: metadata re-read.")

    @admin.action(description="Disable (refuse sign-ins at once)")
    def disable(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = queryset.update(enabled=False)
        self.message_user(request, f"Disabled {count} connection(s).")
