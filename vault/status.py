"""Token status for the connections page (through accounts' adapter, ``vault.adapter``).

``connections_extras(user)`` answers for all of the user's identities in one query; the dicts are
rendered by ``vault/templates/vault/identity_token_status.html``. Nothing in them is secret.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import JSONField, OuterRef, Subquery
from django.utils import timezone
from social_django.models import UserSocialAuth

from accounts.providers import holds_tokens, is_configured, provider_title
from activity.models import Activity

from .activity_kinds import VaultKind
from .capture import narrowed_message
from .models import TokenSet


def token_status(token_set: TokenSet | None, *, provider: str, now=None) -> dict[str, Any]:
    """What a person needs to know about one identity's tokens (never a token)."""
    now = now or timezone.now()
    title = provider_title(provider)
    if token_set is None:
        return {
            "status": "missing",
            "status_label": "No token stored",
            "needs_reconnect": True,
            "detail": f"Reconnect to let this site act with your {title} account.",
            "scopes": [],
            "provider_title": title,
        }
    expired = token_set.expires_at is not None and token_set.expires_at <= now
    assumed = token_set.expiry_assumed
    needs_reconnect = token_set.status in (
        TokenSet.Status.RECONNECT_REQUIRED,
        TokenSet.Status.VAULT_FAULT,
    ) or (expired and not token_set.has_refresh_token and not assumed)
    if token_set.status == TokenSet.Status.VAULT_FAULT:
        # The stored value cannot be used (issue 12.5); only a new sign-in with the provider mends it.
        status, label = "vault_fault", "Reconnect"
        detail = f"The stored {title} token could not be read; reconnect to store a new one."
    elif needs_reconnect:
        status, label = "reconnect_required", "Reconnect required"
        detail = f"{title} no longer accepts the stored authorization."
    elif expired and assumed and not token_set.has_refresh_token:
        status, label = "active", "Active"
        detail = f"{title} did not say when the token expires and it cannot be renewed here."
    elif expired:
        status, label = "active", "Active"
        detail = "The access token has expired and is renewed on next use."
    else:
        status, label, detail = "active", "Active", ""
    return {
        "status": status,
        "status_label": label,
        "detail": detail,
        "needs_reconnect": needs_reconnect,
        "expires_at": token_set.expires_at,
        "expired": expired,
        # The provider gave no expires_in: the expiry is VAULT_ASSUMED_TOKEN_LIFETIME (issue 20.9).
        "expiry_assumed": assumed,
        "refreshed_at": token_set.refreshed_at,
        "has_refresh_token": token_set.has_refresh_token,
        "scopes": list(token_set.scopes or []),
        "scopes_reported": token_set.scopes_reported,
        "provider_title": title,
    }


def connections_extras(user) -> dict[int, dict[str, Any]]:
    """``{identity id: token status}`` for every identity of ``user``, in one query."""
    now = timezone.now()
    extras: dict[int, dict[str, Any]] = {}
    # Each identity's latest narrowing (``vault.capture``) comes along in the same query.
    narrowings = Activity.objects.filter(
        kind=VaultKind.SCOPES_NARROWED, user=user, identity_id=OuterRef("pk")
    )
    latest = Subquery(narrowings.order_by("-created_at", "-id").values("data")[:1], output_field=JSONField())
    identities = (
        UserSocialAuth.objects.filter(user=user).select_related("token_set").annotate(narrowing=latest)
    )
    for identity in identities:
        if not holds_tokens(identity.provider) and is_configured(identity.provider):
            continue  # a way in only (SAML): no tokens to show or reconnect
        try:
            token_set = identity.token_set
        except ObjectDoesNotExist:
            token_set = None
        status = token_status(token_set, provider=identity.provider, now=now)
        # Told until a later sign-in grants the lost scopes again.
        lost = [s for s in (identity.narrowing or {}).get("lost", []) if s not in status["scopes"]]
        if lost:
            status["narrowed"] = narrowed_message(provider=identity.provider, lost=lost)
        extras[identity.pk] = status
    return extras


def granted_scopes(*, user, provider: str) -> list[str]:
    """The scopes stored for ``user``'s one account at ``provider`` (a link or reconnect asks for
    them again). With several accounts there the site cannot tell which one the person will pick,
    and asking one account for another's grant would be wrong, so nothing is added."""
    stored = TokenSet.objects.filter(identity__user=user, identity__provider=provider)
    rows = list(stored.values_list("scopes", flat=True)[:2])
    return list(rows[0] or []) if len(rows) == 1 else []


def merge_review_extras(source) -> dict[str, str]:
    """For the merge review (``vault.adapter``): what happens to ``source``'s tokens."""
    token_sets = list(TokenSet.objects.filter(identity__user=source).values_list("status", flat=True))
    if not token_sets:
        return {"stored tokens": "none"}
    reconnect = sum(status == TokenSet.Status.RECONNECT_REQUIRED for status in token_sets)
    summary = f"tokens of {len(token_sets)} account(s)"
    if reconnect:
        summary += f" ({reconnect} need reconnecting)"
    return {"stored tokens": f"{summary}; moved accounts keep theirs, dropped accounts' are revoked"}


def connections_for_agent(*, user_id: int, providers: list[str]) -> list[dict[str, Any]]:
    """``GET /api/v1/connections``: the user's accounts of ``providers`` with token status, in one
    query. Never a token."""
    rows = []
    identities = (
        UserSocialAuth.objects.filter(user_id=user_id, provider__in=providers)
        .select_related("details", "token_set")
        .order_by("provider", "pk")
    )
    for identity in identities:
        details = getattr(identity, "details", None)
        token_set: TokenSet | None = getattr(identity, "token_set", None)
        expires_at = token_set.expires_at if token_set is not None else None
        rows.append(
            {
                "account": identity.pk,
                "connection": identity.provider,
                "account_name": details.account_name if details else "",
                "email": details.email if details else "",
                "email_verified": bool(details and details.email_verified),
                "default": bool(details and details.is_default),
                # Issue 20.1: a provider removed from the settings hands out nothing.
                "status": token_status(token_set, provider=identity.provider)["status"]
                if is_configured(identity.provider)
                else "not_available",
                "scopes": list(token_set.scopes or []) if token_set is not None else [],
                "expires_at": expires_at.isoformat().replace("+00:00", "Z") if expires_at else None,
            }
        )
    return rows
