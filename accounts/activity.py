"""Recording activity: one function every part of the site calls, so records look the same."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from linking_site import prepared

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
    wait_for_disk: bool = True,
) -> Activity:
    """Append one activity record. ``identity`` is a ``UserSocialAuth`` when there is one.

    Written with one INSERT and no save signals (Activity has no receivers; it is append-only).
    ``wait_for_disk=False`` is for the record of every token handed to an agent: see
    ``linking_site.prepared.insert``.
    """
    if identity is not None:
        provider = provider or identity.provider
        uid = uid or identity.uid
    entry = Activity(
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
    # One fixed INSERT (prepared on PostgreSQL): every token handed to an agent writes a record,
    # and the ORM's per-call compilation of it cost more than the insert itself (bench/README.md).
    prepared.insert(entry, wait_for_disk=wait_for_disk)
    return entry
