"""Stored tokens (token sets) for staff: read-only, without plaintext or ciphertext; force refresh and
revoke. Staff read the words people do: provider titles, times with their zone, no "token set".

Deleting a token set here is not offered: erasing tokens without revoking them at the provider is
exactly what "Revoke" exists to avoid.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join

from accounts.admin_words import ProviderFilter, provider_display, scopes_display, short_names, when_display
from accounts.providers import provider_title
from activity.admin_mixins import STAFF_ACTION, ReadOnlyAdminMixin

from . import connect, errors, refresh, revocation
from .agents import revoke_agent_key
from .models import AgentKey, ConnectRequest, TokenSet

#: Shown fields: never ``access_token_encrypted`` / ``refresh_token_encrypted`` / ``lease_id``.
SHOWN_FIELDS = (
    "id",
    "provider_name",
    "identity_link",
    "owner_id",
    "uid",
    "status",
    "scope_list",
    "token_type",
    "expires_at_when",
    "expiry_assumed",
    "issued_at_when",
    "refreshed_at_when",
    "has_refresh_token",
    "key_name",
    "last_error_code",
    "last_error_at_when",
    "retry_not_before_when",
    "revoke_attempts",
    "detached_at_when",
    "created_at_when",
    "updated_at_when",
)


@admin.register(TokenSet)
class TokenSetAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "provider_name",
        "identity_link",
        "owner_id",
        "status",
        "scope_list",
        "expires_at_when",
        "refreshed_at_when",
        "key_name",
        "last_error_code",
    )
    list_filter = ("status", ProviderFilter, "key_name")
    search_fields = ("uid", "identity__user__email", "identity__user__username")
    ordering = ("-updated_at",)
    fields = SHOWN_FIELDS
    readonly_fields = SHOWN_FIELDS
    actions = ("force_refresh", "revoke")
    list_select_related = ("identity",)
    expires_at_when = when_display("expires_at", "expires")
    issued_at_when = when_display("issued_at", "issued")
    refreshed_at_when = when_display("refreshed_at", "refreshed")
    last_error_at_when = when_display("last_error_at", "last error")
    retry_not_before_when = when_display("retry_not_before", "retry not before")
    detached_at_when = when_display("detached_at", "removed from its account")
    created_at_when = when_display("created_at", "created")
    updated_at_when = when_display("updated_at", "updated")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # Never load the ciphertexts for a page that must not show them.
        return super().get_queryset(request).defer("access_token_encrypted")

    def changelist_view(self, request, extra_context=None):
        # Tokens this site cannot decrypt are never given up on (issue 20.4): say so at the top.
        waiting = TokenSet.objects.waiting_for_key().count()
        if waiting:
            self.message_user(
                request,
                f"{waiting} removed account(s) wait for revocation because their tokens do not decrypt "
                "with VAULT_KEYS (wrong or missing key); they are kept until the right key is configured.",
                messages.WARNING,
            )
        return super().changelist_view(request, {"title": "Stored tokens", **(extra_context or {})})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # The model's own name and str() say "token set" and the backend name: staff read these.
        context = {"title": "Stored tokens of one account"}
        obj = self.get_object(request, unquote(object_id))
        if obj is not None:
            context["subtitle"] = (
                f"{provider_title(obj.provider)} tokens #{obj.pk} ({obj.get_status_display()})"
            )
        return super().change_view(request, object_id, form_url, {**context, **(extra_context or {})})

    @admin.display(description="provider", ordering="provider")
    def provider_name(self, obj: TokenSet) -> str:
        return provider_title(obj.provider)

    @admin.display(description="identity")
    def identity_link(self, obj: TokenSet) -> str:
        if obj.identity_id is None:
            if obj.last_error_code in revocation.KEY_FAULT_CODES:
                return "removed (revocation waiting for the right vault key)"
            return "removed (revocation pending)"
        try:
            url = reverse("admin:social_django_usersocialauth_change", args=[obj.identity_id])
        except NoReverseMatch:
            return f"#{obj.identity_id}"
        return format_html('<a href="{}">#{}</a>', url, obj.identity_id)

    scope_list = scopes_display("scopes", "granted scopes")

    @admin.display(description="refresh token stored", boolean=True)
    def has_refresh_token(self, obj: TokenSet) -> bool:
        return obj.has_refresh_token

    @admin.action(description="Force refresh", permissions=[STAFF_ACTION])
    def force_refresh(self, request: HttpRequest, queryset: QuerySet) -> None:
        done, failed = 0, {}
        for token_set_id in queryset.values_list("pk", flat=True):
            try:
                refresh.force_refresh(token_set_id=token_set_id, actor=request.user)
            except errors.TokenVaultError as error:
                failed[error.code] = failed.get(error.code, 0) + 1
            else:
                done += 1
        if done:
            self.message_user(request, f"Refreshed the tokens of {done} account(s).", messages.SUCCESS)
        for code, count in sorted(failed.items()):
            self.message_user(
                request,
                f"Tokens of {count} account(s) not refreshed: {code.replace('_', ' ')}.",
                messages.WARNING,
            )

    @admin.action(description="Revoke at the provider and erase", permissions=[STAFF_ACTION])
    def revoke(self, request: HttpRequest, queryset: QuerySet) -> None:
        results: dict[str, int] = {}
        for token_set_id in queryset.values_list("pk", flat=True):
            result = revocation.revoke_now(token_set_id=token_set_id, actor=request.user)
            results[result] = results.get(result, 0) + 1
        if results.get("revoked"):
            self.message_user(
                request,
                f"Revoked and erased the tokens of {results['revoked']} account(s).",
                messages.SUCCESS,
            )
        if results.get("failed"):
            self.message_user(
                request,
                f"Tokens of {results['failed']} account(s) could not be revoked yet; "
                "vault_refresh retries them.",
                messages.WARNING,
            )
        others = sum(count for result, count in results.items() if result not in ("revoked", "failed"))
        if others:
            self.message_user(
                request, f"Tokens of {others} account(s) were busy or already gone.", messages.WARNING
            )


@admin.register(AgentKey)
class AgentKeyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Agent keys: never the key (only its hash exists), with a revoke action."""

    list_display = (
        "name",
        "hint",
        "user",
        "provider_titles",
        "created_at_when",
        "expires_at_when",
        "last_used_at_when",
        "state",
    )
    list_filter = ("revoked_at",)
    search_fields = ("name", "hint", "user__username", "user__email")
    fields = (
        "user",
        "name",
        "hint",
        "provider_titles",
        "scope_limits",
        "whole_grant",
        "created_at_when",
        "expires_at_when",
        "last_used_at_when",
        "last_used_ip",
        "revoked_at_when",
        "revoked_reason",
    )
    readonly_fields = fields
    actions = ["revoke_selected"]
    list_select_related = ("user",)
    created_at_when = when_display("created_at", "created")
    expires_at_when = when_display("expires_at", "expires")
    last_used_at_when = when_display("last_used_at", "last used")
    revoked_at_when = when_display("revoked_at", "revoked")

    @admin.display(description="providers")
    def provider_titles(self, obj: AgentKey) -> str:
        return ", ".join(provider_title(name) for name in obj.providers)

    @admin.display(description="only these scopes")
    def scope_limits(self, obj: AgentKey) -> str:
        limits = (obj.scopes or {}).items()
        return (
            format_html_join(
                "; ", "{}: {}", ((provider_title(name), short_names(scopes)) for name, scopes in limits)
            )
            or "any the account granted"
        )

    @admin.action(description="Revoke selected agent keys", permissions=[STAFF_ACTION])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = 0
        for key in queryset.filter(revoked_at__isnull=True).select_related("user"):
            revoke_agent_key(
                user=key.user, key_id=key.pk, reason=f"revoked by staff {request.user}", request=request
            )
            count += 1
        self.message_user(request, f"Revoked {count} agent key(s).", messages.SUCCESS)


@admin.register(ConnectRequest)
class ConnectRequestAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "user",
        "agent_key",
        "provider_name",
        "scope_names",
        "status",
        "created_at_when",
        "expires_at_when",
    )
    list_filter = ("status", ProviderFilter)
    search_fields = ("id", "user__username", "user__email")
    list_select_related = ("user", "agent_key")
    fields = (
        "id",
        "user",
        "agent_key",
        "client_id",
        "provider_name",
        "scope_names",
        "reason",
        "status",
        "closed_reason",
        "created_at_when",
        "expires_at_when",
        "completed_at_when",
        "identity_id",
    )
    readonly_fields = fields
    provider_name = provider_display()
    scope_names = scopes_display("scopes", "scopes")
    created_at_when = when_display("created_at", "created")
    expires_at_when = when_display("expires_at", "expires")
    completed_at_when = when_display("completed_at", "completed")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        context = (
            {"subtitle": f"{provider_title(obj.provider)} for {obj.agent_key or 'an application'}"}
            if obj
            else {}
        )
        return super().change_view(request, object_id, form_url, {**context, **(extra_context or {})})

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None):
        # The id is checked by its format before any query: a NUL is a database error on
        # PostgreSQL (a 500); anything malformed is "does not exist" (change, delete, history).
        if from_field is None and not connect.is_request_id(object_id):
            return None
        return super().get_object(request, object_id, from_field)
