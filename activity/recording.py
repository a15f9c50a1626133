"""Recording activity: one function every part of the site calls, so records look the same."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest
from django.utils import timezone

from .models import Activity


def client_ip(request: HttpRequest | None) -> str | None:
    """The client's address as Django sees it (put a proxy's header rewrite in front if needed)."""
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def record_values(
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
) -> dict[str, Any]:
    """A new record's column values (every column but the id), filled the one way every record is
    filled. ``identity`` is a ``UserSocialAuth`` when there is one; ``agent_key_id`` is the agent
    key that acted. ``new_record`` makes the row of them; the vault's hot path stages them as they
    are (``vault.staged_records``), where building a model instance first cost more than the rest."""
    if identity is not None:
        provider = provider or identity.provider
        uid = uid or identity.uid
    return {
        # Ids, not objects: the record needs no more, and setting a relation costs more.
        "user_id": user.pk if user is not None and user.pk else None,
        "actor_id": actor.pk if actor is not None else None,
        "kind": kind,
        "provider": provider,
        "uid": uid,
        "identity_id": getattr(identity, "pk", None) or identity_id,
        "agent_key_id": agent_key_id,
        "message": message[:500],
        "data": data or {},
        "ip_address": ip_address or client_ip(request),
        "created_at": timezone.now(),
    }


def new_record(**fields: Any) -> Activity:
    """An unsaved record of ``record_values(**fields)``. ``record()`` saves it; the vault's hot
    path inserts the token-issued record made here when there is no Redis to stage it in."""
    return Activity(**record_values(**fields))


def record(**fields: Any) -> Activity:
    """Append one activity record of ``record_values(**fields)``, through ``Activity.save()`` so its
    append-only guard runs."""
    entry = new_record(**fields)
    entry.save()
    return entry
