"""Connect requests: an agent asks its user to link a provider (or grant more scopes).

The agent gets a URL (``/connect/<id>/``); the user opens it, sees which agent asks for what, and
approves (a normal provider round trip with those scopes) or declines. A request is bound to its
user and single use: once completed, declined or expired it stays so.
"""

from __future__ import annotations

import re
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.module_loading import import_string
from social_django.models import UserSocialAuth

from accounts.locking import InactiveProfile, lock_active_profile
from accounts.models import User
from accounts.providers import holds_tokens, provider_title
from activity import recording

from . import errors
from . import scopes as scope_rules
from .activity_kinds import VaultKind
from .agents import AgentKey, check_allowed
from .models import ConnectRequest, TokenSet

LIFETIME = timedelta(seconds=getattr(settings, "CONNECT_REQUEST_SECONDS", 600))
# What vault.models makes ("cr_" + token_urlsafe(18)), with room for longer ones (max_length 40).
REQUEST_ID_PATTERN = "cr_[A-Za-z0-9_-]{1,37}"


def is_request_id(value: object) -> bool:
    """True for a string shaped like a connect request id: checked before any query sees it."""
    return isinstance(value, str) and re.fullmatch(REQUEST_ID_PATTERN, value) is not None


class ConnectRequestIdConverter:
    """``<crid:request_id>`` in URLs: anything else (a NUL, a quote, 41 characters) does not match."""

    regex = REQUEST_ID_PATTERN

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class ConnectRequestNotFound(errors.NotFound):
    default_message = "No such connect request for this agent."


class NotYourRequest(Exception):
    """The signed-in person is not the user the request was made for."""


class RequestClosed(Exception):
    """The request is completed, declined or expired; ``status`` says which."""

    def __init__(self, status: str) -> None:
        self.status = status
        super().__init__(status)


def page_url(request: ConnectRequest) -> str:
    return f"{settings.SITE_URL}{reverse('vault:connect_request', kwargs={'request_id': request.id})}"


def as_dict(request: ConnectRequest) -> dict[str, object]:
    return {
        "id": request.id,
        "status": request.current_status,
        "authorize_url": page_url(request),
        "connection": request.provider,
        "scopes": list(request.scopes),
        "expires_at": request.expires_at.isoformat().replace("+00:00", "Z"),
    }


def request_connection(
    *, agent_key: AgentKey, connection: str, scopes: list[str] | str = (), reason: str = ""
) -> tuple[ConnectRequest, bool]:
    """A pending request for this key, provider and scopes: reused if one is open, else new."""
    wanted = sorted(scope_rules.normalise_requested(scopes))
    if not isinstance(connection, str) or not holds_tokens(connection):
        raise errors.InvalidRequest(f"Unknown connection {str(connection)[:40]!r}.")
    check_allowed(agent_key, connection=connection, scopes=wanted)
    return _open_or_reuse(
        asker={"agent_key": agent_key},
        user=agent_key.user,
        connection=connection,
        wanted=wanted,
        reason=reason,
        said_by=f"Agent {agent_key.name!r}",
        data={},
    )


def _open_or_reuse(
    *,
    asker: dict[str, object],
    user: User,
    connection: str,
    wanted: list[str],
    reason: str,
    said_by: str,
    data: dict[str, object],
) -> tuple[ConnectRequest, bool]:
    """The one way a connect request is made: an open one of the same asker (an agent key or an
    application's ``client_id``), user, provider and scopes is reused; else a new one is recorded."""
    now = timezone.now()
    with transaction.atomic():
        open_requests = ConnectRequest.objects.select_for_update().filter(
            **asker, user=user, provider=connection, status=ConnectRequest.Status.PENDING, expires_at__gt=now
        )
        for existing in open_requests:
            if sorted(existing.scopes) == wanted:
                return existing, False
        created = ConnectRequest.objects.create(
            **asker,
            user=user,
            provider=connection,
            scopes=wanted,
            reason=reason[:32],
            expires_at=now + LIFETIME,
        )
        recording.record(
            kind=VaultKind.CONNECT_REQUEST,
            user=user,
            provider=connection,
            message=f"{said_by} asked you to connect {provider_title(connection)}"
            + (f" with {', '.join(wanted)}" if wanted else ""),
            data={"connect_request": created.id, "reason": reason, **data},
        )
    return created, True


def asker_name(found: ConnectRequest) -> str:
    """Who asks, for records: ``agent 'name'``, or ``application 'name'`` (see ``asker_title``)."""
    if found.agent_key_id is not None:
        return f"agent {found.agent_key.name!r}"
    return f"application {asker_title(found)!r}"


def asker_title(found: ConnectRequest) -> str:
    """The asker's name as a person sees it: the agent key's, or the OAuth application's (named by
    ``VAULT_APPLICATION_NAMER``, a callable of ``client_id``: the vault never imports authserver)."""
    if found.agent_key_id is not None:
        return found.agent_key.name
    namer = getattr(settings, "VAULT_APPLICATION_NAMER", "")
    return import_string(namer)(found.client_id) if namer else found.client_id


def request_for_application(
    *, user: User, client_id: str, app_name: str, connection: str, scopes: list[str], reason: str = ""
) -> ConnectRequest:
    """A pending request of an OAuth application (by ``client_id``) for ``user``: reused if one is
    open for the same provider and scopes, else new (``agent_key`` empty)."""
    found, _ = _open_or_reuse(
        asker={"client_id": client_id},
        user=user,
        connection=connection,
        wanted=sorted(scope_rules.normalise_requested(scopes)),
        reason=reason,
        said_by=f"Application {app_name!r}",
        data={"client_id": client_id},
    )
    return found


def for_agent_error(
    error: errors.TokenVaultError, *, agent_key: AgentKey, connection: str, scopes: list[str]
) -> dict[str, object]:
    """What an agent shows its user for an error they can fix: the connect request's URL (reused
    for the same key and scopes), its id and the scopes still missing."""
    if isinstance(error, errors.InsufficientScope):
        wanted = sorted(set(scopes) | set(error.missing))
        required = list(error.missing)
    else:
        wanted = scopes
        required = scopes
    row, _ = request_connection(agent_key=agent_key, connection=connection, scopes=wanted, reason=error.code)
    return {
        "authorize_url": page_url(row),
        "connect_request": row.id,
        "required_scopes": required,
        "connection": connection,
    }


def get_for_agent(*, agent_key: AgentKey, request_id: str) -> ConnectRequest:
    """Only the agent key that made a request can read it; anything else is "not found"."""
    if not is_request_id(request_id):
        raise ConnectRequestNotFound()
    found = ConnectRequest.objects.filter(pk=request_id, agent_key=agent_key).first()
    if found is None:
        raise ConnectRequestNotFound()
    _expire_if_due(found)
    return found


def _expire_if_due(found: ConnectRequest) -> None:
    if found.status == ConnectRequest.Status.PENDING and found.expires_at <= timezone.now():
        ConnectRequest.objects.filter(pk=found.pk, status=ConnectRequest.Status.PENDING).update(
            status=ConnectRequest.Status.EXPIRED, closed_reason="expired"
        )
        found.status = ConnectRequest.Status.EXPIRED


def open_for_user(*, request_id: str, user: User) -> ConnectRequest:
    """The request a person opened; refused unless it was made for them and is still pending."""
    return _pending_for(ConnectRequest.objects.select_related("agent_key"), request_id=request_id, user=user)


def _pending_for(queryset, *, request_id: str, user: User) -> ConnectRequest:
    """The request if it is ``user``'s and still pending; otherwise the reason it is not."""
    if not is_request_id(request_id):
        raise ConnectRequestNotFound("No such connect request.")
    found = queryset.filter(pk=request_id).first()
    if found is None:
        raise ConnectRequestNotFound("No such connect request.")
    if found.user_id != user.pk:
        raise NotYourRequest()
    _expire_if_due(found)
    if found.status != ConnectRequest.Status.PENDING:
        raise RequestClosed(found.status)
    return found


def _lock_pending(*, request_id: str, user: User) -> ConnectRequest:
    """``_pending_for`` with the row locked, inside the caller's transaction (single use)."""
    return _pending_for(
        # of=self: an application's request has no agent key, and PostgreSQL cannot lock the
        # nullable side of the outer join that select_related makes for it.
        ConnectRequest.objects.select_for_update(of=("self",)).select_related("agent_key"),
        request_id=request_id,
        user=user,
    )


def _linked_identity_covering(found: ConnectRequest) -> UserSocialAuth | None:
    """An identity of the user for that provider whose live grant covers the asked scopes."""
    candidates = (
        UserSocialAuth.objects.filter(user_id=found.user_id, provider=found.provider)
        .select_related("token_set")
        .order_by("-token_set__updated_at")
    )
    for identity in candidates:
        token_set = getattr(identity, "token_set", None)
        if token_set is None or token_set.status != TokenSet.Status.ACTIVE:
            continue
        if not scope_rules.missing_scopes(
            found.provider, granted=token_set.scopes or [], requested=found.scopes
        ):
            return identity
    return None


def is_covered(found: ConnectRequest) -> bool:
    """Whether the user's linked accounts now give what the request asks (read only)."""
    return _linked_identity_covering(found) is not None


def complete(*, request_id: str, user: User) -> ConnectRequest:
    """Mark the request completed once the person has linked what it asked for (single use)."""
    with transaction.atomic():
        try:
            # The profile first (the lock order), re-checked: a retired profile completes nothing.
            lock_active_profile(user.pk)
        except InactiveProfile:
            raise RequestClosed(ConnectRequest.Status.EXPIRED) from None
        found = _lock_pending(request_id=request_id, user=user)
        identity = _linked_identity_covering(found)
        if identity is None:
            return found  # still pending: the round trip did not (yet) give what was asked
        found.status = ConnectRequest.Status.COMPLETED
        found.completed_at = timezone.now()
        found.identity_id = identity.pk
        found.save(update_fields=["status", "completed_at", "identity_id"])
        recording.record(
            kind=VaultKind.CONNECT_REQUEST,
            user=user,
            identity=identity,
            message=f"Approved {asker_name(found)}'s request for {provider_title(found.provider)}",
            data={"connect_request": found.id, "status": "completed"},
        )
    return found


def decline(*, request_id: str, user: User) -> ConnectRequest:
    with transaction.atomic():
        found = _lock_pending(request_id=request_id, user=user)
        found.status = ConnectRequest.Status.DECLINED
        found.closed_reason = "declined by the user"
        found.save(update_fields=["status", "closed_reason"])
        recording.record(
            kind=VaultKind.CONNECT_REQUEST,
            user=user,
            provider=found.provider,
            message=f"Declined {asker_name(found)}'s request for {provider_title(found.provider)}",
            data={"connect_request": found.id, "status": "declined"},
        )
    return found


def cancel_pending(*, user: User, reason: str) -> int:
    """Close every pending request of ``user`` (merge, deactivation): they expire at once."""
    return ConnectRequest.objects.filter(user=user, status=ConnectRequest.Status.PENDING).update(
        status=ConnectRequest.Status.EXPIRED, closed_reason=reason[:200]
    )
