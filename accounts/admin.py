"""Staff views of users and identities (the activity log's is in activity/admin.py).

social-auth's own admin shows and edits ``extra_data`` (and its partial-pipeline table can hold a
whole provider response), so those registrations are replaced: identities are shown read-only
with the fields staff need, and removing one goes through ``accounts.unlinking.unlink_identity``.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from social_django.models import Association, Nonce, Partial, UserSocialAuth

from activity.admin_mixins import ReadOnlyAdminMixin

from . import merging, sudo, unlinking
from .admin_words import ProviderFilter, provider_display, when_display
from .exceptions import LinkingError
from .issuers import recorded_issuer
from .models import IdentityDetails, User
from .providers import provider_title
from .staff_sign_in import StaffAdminAuthenticationForm

# The admin's password sign-in is throttled like /staff/login/ (accounts.staff_sign_in).
admin.site.login_form = StaffAdminAuthenticationForm

for model in (UserSocialAuth, Nonce, Association, Partial):
    if admin.site.is_registered(model):
        admin.site.unregister(model)


class IdentityInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = UserSocialAuth
    fields = ("provider_name", "uid", "email", "email_verified", "account_name", "created_when")
    readonly_fields = fields
    provider_name = provider_display()
    created_when = when_display("created", "linked")
    extra = 0
    can_delete = False
    show_change_link = True
    verbose_name = "identity"
    verbose_name_plural = "identities"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("details")

    @admin.display(description="email")
    def email(self, obj: UserSocialAuth) -> str:
        return getattr(getattr(obj, "details", None), "email", "")

    @admin.display(description="verified", boolean=True)
    def email_verified(self, obj: UserSocialAuth) -> bool:
        return bool(getattr(getattr(obj, "details", None), "email_verified", False))

    @admin.display(description="account")
    def account_name(self, obj: UserSocialAuth) -> str:
        return getattr(getattr(obj, "details", None), "account_name", "")


def _confirm_first(request: HttpRequest) -> HttpResponseRedirect:
    """Merging and removing sign-in methods need a recent sign-in, for staff too (sudo mode)."""
    messages.info(request, "Please confirm it's you first, then run the action again.")
    return HttpResponseRedirect(sudo.reauthenticate_url(request.get_full_path()))


_DATES = {"last_login": "last_login_when", "date_joined": "date_joined_when"}


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = (
        "username",
        "name",
        "email",
        "is_active",
        "is_staff",
        "identity_count",
        "date_joined_when",
    )
    search_fields = ("username", "name", "email", "social_auth__uid", "social_auth__details__email")
    readonly_fields = ("merged_into_profile", "last_login_when", "date_joined_when")
    # Django's fieldsets, with its two dates shown in the site's one format (read-only here anyway).
    fieldsets = (
        *(
            (name, {**options, "fields": tuple(_DATES.get(field, field) for field in options["fields"])})
            for name, options in DjangoUserAdmin.fieldsets
        ),
        ("Profile", {"fields": ("name", "avatar_url", "merged_into_profile")}),
    )
    last_login_when = when_display("last_login", "last sign-in")
    date_joined_when = when_display("date_joined", "joined")
    inlines = [IdentityInline]
    actions = ["merge_profiles"]

    @admin.action(description="Merge the two selected profiles…", permissions=["change"])
    def merge_profiles(self, request: HttpRequest, queryset: QuerySet):
        if not sudo.is_recent(request):
            return _confirm_first(request)
        users = list(queryset.order_by("pk"))
        if len(users) != 2:
            self.message_user(request, "Select exactly two profiles to merge.", messages.ERROR)
            return None
        into_id = request.POST.get("into")
        if into_id and request.POST.get("confirm") == "yes":
            into = next((u for u in users if str(u.pk) == into_id), None)
            source = next((u for u in users if str(u.pk) != into_id), None)
            if into is None:
                self.message_user(request, "Choose which profile stays.", messages.ERROR)
                return None
            try:
                plan = merging.merge_profiles(
                    into=into, source=source, move_identity_ids=None, actor=request.user, request=request
                )
            except merging.MergeError as error:
                self.message_user(request, str(error), messages.ERROR)
                return None
            self.message_user(
                request,
                f"Merged profile {source.pk} into {into.pk} ({len(plan.move)} identities moved).",
                messages.SUCCESS,
            )
            return None
        plans = []
        for into, source in ((users[0], users[1]), (users[1], users[0])):
            try:
                plans.append(
                    {
                        "into": into,
                        "source": source,
                        "lines": merging.plan_merge(into=into, source=source).describe(),
                    }
                )
            except merging.MergeError as error:
                self.message_user(request, str(error), messages.ERROR)
                return None
        return TemplateResponse(
            request,
            "admin/accounts/merge_confirm.html",
            {
                **self.admin_site.each_context(request),
                "title": "Merge two profiles",
                "plans": plans,
                "users": users,
                "opts": self.model._meta,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )

    @admin.display(description="merged into")
    def merged_into_profile(self, obj: User) -> str:
        # The model's help text calls a merged-away profile a "tombstone"; staff read plain words.
        if not obj.merged_into_id:
            return "-"
        url = reverse("admin:accounts_user_change", args=[obj.merged_into_id])
        return format_html(
            '<a href="{}">profile {}</a> <span class="help">(this profile was merged into it and is kept, '
            "inactive, pointing there)</span>",
            url,
            obj.merged_into_id,
        )

    @admin.display(description="identities")
    def identity_count(self, obj: User) -> int:
        return obj.social_auth.count()


@admin.register(UserSocialAuth)
class IdentityAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Identities, without ``extra_data``. Deleting one unlinks it the same way the user would.

    No raw delete (the mixin): the bulk "unlink" action keeps the rules; the raw delete would not.
    """

    list_display = ("pk", "provider_name", "uid", "user", "profile_state", "email", "created_when")
    list_filter = (ProviderFilter, "user__is_active")
    search_fields = ("uid", "user__username", "user__email", "details__email", "details__account_name")
    fields = (
        "user",
        "provider_name",
        "uid",
        "issuer",
        "email",
        "email_verified",
        "account_name",
        "created_when",
        "modified_when",
    )
    readonly_fields = fields
    actions = ["unlink_selected"]
    list_select_related = ("user", "details")
    provider_name = provider_display()
    created_when = when_display("created", "linked")
    modified_when = when_display("modified", "changed")

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        # social-auth names its model "user social auth"; staff read "identities", as on every page.
        return super().changelist_view(request, {"title": "Identities", **(extra_context or {})})

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        context = {"title": "Identity", **(extra_context or {})}
        return super().change_view(request, object_id, form_url, context)

    @admin.display(description="profile")
    def profile_state(self, obj: UserSocialAuth) -> str:
        # An identity on a retired profile cannot sign in and blocks relinking: "Unlink" repairs it.
        if obj.user.merged_into_id:
            return f"merged into {obj.user.merged_into_id} (unlink to repair)"
        return "active" if obj.user.is_active else "inactive (unlink to repair)"

    @admin.display(description="issuer")
    def issuer(self, obj: UserSocialAuth) -> str:
        # Issue 20.1: the issuer the identity is bound to; accounts_oidc_issuer moves it.
        return recorded_issuer(obj) or "-"

    @admin.display(description="email")
    def email(self, obj: UserSocialAuth) -> str:
        return getattr(getattr(obj, "details", None), "email", "")

    @admin.display(description="email verified", boolean=True)
    def email_verified(self, obj: UserSocialAuth) -> bool:
        return bool(getattr(getattr(obj, "details", None), "email_verified", False))

    @admin.display(description="account")
    def account_name(self, obj: UserSocialAuth) -> str:
        return getattr(getattr(obj, "details", None), "account_name", "")

    @admin.action(description="Unlink selected identities (revokes their tokens)", permissions=["view"])
    def unlink_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        if not request.user.is_superuser:
            self.message_user(request, "Only superusers can unlink identities.", messages.ERROR)
            return None
        if not sudo.is_recent(request):
            return _confirm_first(request)
        done = 0
        for identity in queryset.select_related("user"):
            try:
                unlinking.unlink_identity(
                    user=identity.user,
                    identity_id=identity.pk,
                    actor=request.user,
                    request=request,
                    # Also an identity left on a merged-away profile (issue 20.3): staff repair it.
                    staff_repair=True,
                )
                done += 1
            except LinkingError as error:
                self.message_user(
                    request, f"{provider_title(identity.provider)} {identity.uid}: {error}", messages.ERROR
                )
        if done:
            self.message_user(
                request, f"Unlinked {done} identit{'y' if done == 1 else 'ies'}.", messages.SUCCESS
            )


@admin.register(IdentityDetails)
class IdentityDetailsAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "identity_name",
        "email",
        "email_verified",
        "issuer",
        "created_profile",
        "is_default",
        "linked_at_when",
    )
    list_select_related = ("identity",)
    linked_at_when = when_display("linked_at", "linked")

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        obj = self.get_object(request, unquote(object_id))
        context = {"subtitle": self.identity_name(obj)} if obj else {}
        return super().change_view(request, object_id, form_url, {**context, **(extra_context or {})})

    @admin.display(description="identity", ordering="identity")
    def identity_name(self, obj: IdentityDetails) -> str:
        return f"{provider_title(obj.identity.provider)} {obj.account_name or obj.identity.uid}"
