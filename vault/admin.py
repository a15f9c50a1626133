"""Token sets for staff: read-only, without plaintext or ciphertext; force refresh and revoke.

Deleting a token set here is not offered: erasing tokens without revoking them at the provider is
exactly what "Revoke" exists to avoid.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

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
    "expires_at",
    "expiry_assumed",
    "issued_at",
    "refreshed_at",
    "has_refresh_token",
    "key_name",
    "last_error_code",
    "last_error_at",
    "retry_not_before",
    "revoke_attempts",
    "detached_at",
    "created_at",
    "updated_at",
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
        "expires_at",
        "refreshed_at",
        "key_name",
        "last_error_code",
    )
    list_filter = ("status", "provider", "key_name")
    search_fields = ("uid", "identity__user__email", "identity__user__username")
    ordering = ("-updated_at",)
    fields = SHOWN_FIELDS
    readonly_fields = SHOWN_FIELDS
    actions = ("force_refresh", "revoke")
    list_select_related = ("identity",)

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
        return super().changelist_view(request, extra_context)

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

    @admin.display(description="granted scopes")
    def scope_list(self, obj: TokenSet) -> str:
        return " ".join(obj.scopes or []) or "-"

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
            self.message_user(request, f"Refreshed {done} token set(s).", messages.SUCCESS)
        for code, count in sorted(failed.items()):
            self.message_user(
                request, f"{count} token set(s) not refreshed: {code.replace('_', ' ')}.", messages.WARNING
            )

    @admin.action(description="Revoke at the provider and erase", permissions=[STAFF_ACTION])
    def revoke(self, request: HttpRequest, queryset: QuerySet) -> None:
        results: dict[str, int] = {}
        for token_set_id in queryset.values_list("pk", flat=True):
            result = revocation.revoke_now(token_set_id=token_set_id, actor=request.user)
            results[result] = results.get(result, 0) + 1
        if results.get("revoked"):
            self.message_user(
                request, f"Revoked and erased {results['revoked']} token set(s).", messages.SUCCESS
            )
        if results.get("failed"):
            self.message_user(
                request,
                f"{results['failed']} token set(s) could not be revoked yet; vault_refresh retries them.",
                messages.WARNING,
            )
        others = sum(count for result, count in results.items() if result not in ("revoked", "failed"))
        if others:
            self.message_user(request, f"{others} token set(s) were busy or already gone.", messages.WARNING)


@admin.register(AgentKey)
class AgentKeyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Agent keys: never the key (only its hash exists), with a revoke action."""

    list_display = ("name", "hint", "user", "providers", "created_at", "expires_at", "last_used_at", "state")
    list_filter = ("revoked_at",)
    search_fields = ("name", "hint", "user__username", "user__email")
    fields = (
        "user",
        "name",
        "hint",
        "providers",
        "scopes",
        "whole_grant",
        "created_at",
        "expires_at",
        "last_used_at",
        "last_used_ip",
        "revoked_at",
        "revoked_reason",
    )
    readonly_fields = fields
    actions = ["revoke_selected"]
    list_select_related = ("user",)

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
    list_display = ("id", "user", "agent_key", "provider", "scopes", "status", "created_at", "expires_at")
    list_filter = ("status", "provider")
    search_fields = ("id", "user__username", "user__email")
    list_select_related = ("user", "agent_key")

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None):
        # The id is checked by its format before any query: a NUL is a database error on
        # PostgreSQL (a 500); anything malformed is "does not exist" (change, delete, history).
        if from_field is None and not connect.is_request_id(object_id):
            return None
        return super().get_object(request, object_id, from_field)
