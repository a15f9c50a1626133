"""Recording activity: one function every part of the site calls, so records look the same."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest

from .models import Activity


def client_ip(request: HttpRequest | None) -> str | None:
    """The client's address as Django sees it (put a proxy's header rewrite in front if needed)."""
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def new_record(
    *,
    kind: str,
    user: AbstractBaseUser | None,
    request: HttpRequest | None = None,
    identity: Any = None,
    provider: str = "",
    uid: str = "",
    message: str = "",
    data: dict[str, Any] | None = None,
    actor: AbstractBaseUser | None = None,
    ip_address: str | None = None,
    identity_id: int | None = None,
    agent_key_id: int | None = None,
) -> Activity:
    """An unsaved record, filled the one way every record is filled. ``identity`` is a
    ``UserSocialAuth`` when there is one; ``agent_key_id`` is the agent key that acted.

    ``record()`` saves it; the vault's hot path inserts the token-issued record made here."""
    if identity is not None:
        provider = provider or identity.provider
        uid = uid or identity.uid
    return Activity(
        kind=kind,
        # The id, not the object: the record needs no more, and setting the relation costs more.
        user_id=user.pk if user is not None and user.pk else None,
        actor=actor,
        provider=provider,
        uid=uid,
        identity_id=getattr(identity, "pk", None) or identity_id,
        message=message[:500],
        data=data or {},
        ip_address=ip_address or client_ip(request),
        agent_key_id=agent_key_id,
    )


def record(
    *,
    kind: str,
    user: AbstractBaseUser | None,
    request: HttpRequest | None = None,
    identity: Any = None,
    provider: str = "",
    uid: str = "",
    message: str = "",
    data: dict[str, Any] | None = None,
    actor: AbstractBaseUser | None = None,
    ip_address: str | None = None,
    identity_id: int | None = None,
    agent_key_id: int | None = None,
) -> Activity:
    """Append one activity record, through ``Activity.save()`` so its append-only guard runs."""
    entry = new_record(
        kind=kind,
        user=user,
        request=request,
        identity=identity,
        provider=provider,
        uid=uid,
        message=message,
        data=data,
        actor=actor,
        ip_address=ip_address,
        identity_id=identity_id,
        agent_key_id=agent_key_id,
    )
    entry.save()
    return entry
