"""Recording activity: one function every part of the site calls, so records look the same."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from .models import Activity, User


def client_ip(request: HttpRequest | None) -> str | None:
    """The client's address as Django sees it (put a proxy's header rewrite in front if needed)."""
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def record(
    *,
    kind: str,
    user: User | None,
    request: HttpRequest | None = None,
    identity: Any = None,
    provider: str = "",
    uid: str = "",
    message: str = "",
    data: dict[str, Any] | None = None,
    actor: User | None = None,
    ip_address: str | None = None,
    identity_id: int | None = None,
    agent_key_id: int | None = None,
) -> Activity:
    """Append one activity record. ``identity`` is a ``UserSocialAuth`` when there is one."""
    if identity is not None:
        provider = provider or identity.provider
        uid = uid or identity.uid
    return Activity.objects.create(
        kind=kind,
        user=user if user is not None and user.pk else None,
        actor=actor,
        provider=provider,
        uid=uid,
        identity_id=getattr(identity, "pk", None) or identity_id,
        message=message[:500],
        data=data or {},
        ip_address=ip_address or client_ip(request),
        agent_key_id=agent_key_id,
    )
